//go:build !amd64 && !arm64

package sandbox

// seccompArch is 0 where the package has no syscall table: the seccomp layer is unavailable.
const seccompArch = 0

const seccompX32Bit = 0

var archDenied []uintptr

var deniedSyscalls []uintptr
