package sandbox

import "golang.org/x/sys/unix"

// seccompArch is the audit architecture the filter allows.
const seccompArch = unix.AUDIT_ARCH_X86_64

// seccompX32Bit marks x32 syscalls, which share the x86_64 audit architecture; they are refused.
const seccompX32Bit = 0x40000000

// archDenied are this architecture's own syscalls the filter refuses: port I/O and uselib.
var archDenied = []uintptr{unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_USELIB}
