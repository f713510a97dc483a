package kernel

import "fmt"

// GuestMemory is the export through which the bulk copies reach the guest's linear memory:
// "memory", the name every Extism PDK (and Go's wasip1 port) exports it under (BindGuest).
const GuestMemory = "memory"

// copyFault is the message of a bulk copy's fault (codes 10 to 15 of kernel.wat), prefixed, as a
// host function's trap is, with the function's name: astrid_kernel_read for the even codes,
// astrid_kernel_write for the odd ones.
func copyFault(code int32, a, b, c uint64, d int64) string {
	name, op := "astrid_kernel_read", "read"
	if code%2 == 1 {
		name, op = "astrid_kernel_write", "write"
	}
	p := name + ": extism kernel: " + op + ": "
	switch code {
	case 10, 11: // the kernel range: a=address b=size c=block start or 0 d=block length, -1 if freed
		if c == 0 || d < 0 {
			return fmt.Sprintf("%saddress %#x (%d bytes) is outside every live block", p, a, b)
		}
		return fmt.Sprintf("%s%d bytes at address %#x run past the end of the %d-byte block %#x", p, b, a, d, c)
	case 12, 13: // the guest range: a=offset b=size c=memory size
		return fmt.Sprintf("%s%d bytes at offset %#x are outside the guest's %d-byte memory", p, b, a, c)
	default: // 14, 15: no guest memory is bound (Kernel.BindGuest)
		return fmt.Sprintf("%sthe guest exports no memory %q (or the call came from its start function, before the guest's memory could be bound)", p, GuestMemory)
	}
}
