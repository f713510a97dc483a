package sandbox

import "golang.org/x/sys/unix"

// seccompArch is the audit architecture the filter allows.
const seccompArch = unix.AUDIT_ARCH_AARCH64

// seccompX32Bit is 0: arm64 has no second syscall numbering in its audit architecture.
const seccompX32Bit = 0

// archDenied are this architecture's own syscalls the filter refuses: none.
var archDenied []uintptr
