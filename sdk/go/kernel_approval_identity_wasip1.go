package astrid

// The approval and identity host functions (extism:host/user), as astrid-sys 0.5 declares them:
// one request block in, one JSON block out.

//go:wasmimport extism:host/user astrid_request_approval
func hostRequestApproval(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_resolve
func hostIdentityResolve(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_link
func hostIdentityLink(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_unlink
func hostIdentityUnlink(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_create_user
func hostIdentityCreateUser(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_list_links
func hostIdentityListLinks(req uint64) uint64
