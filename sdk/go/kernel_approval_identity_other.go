//go:build !wasip1

package astrid

func hostRequestApproval(uint64) uint64    { panic(noKernel) }
func hostIdentityResolve(uint64) uint64    { panic(noKernel) }
func hostIdentityLink(uint64) uint64       { panic(noKernel) }
func hostIdentityUnlink(uint64) uint64     { panic(noKernel) }
func hostIdentityCreateUser(uint64) uint64 { panic(noKernel) }
func hostIdentityListLinks(uint64) uint64  { panic(noKernel) }
