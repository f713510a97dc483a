package kernel

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// GuestMemory is the export through which CopyOut and CopyIn reach the calling guest's linear
// memory: "memory", the name every Extism PDK (and Go's wasip1 port) exports it under.
const GuestMemory = "memory"

// SetGuestMemory records the guest's exported linear memory (its export GuestMemory, nil if it
// has none) once the guest is instantiated, so that CopyOut and CopyIn need not look it up
// through the Caller at every call. Until it is set they do.
func (k *Kernel) SetGuestMemory(m *wasmtime.Memory) { k.guest = m }

// guestMemory returns the calling guest's linear memory, or nil.
func (k *Kernel) guestMemory(c *wasmtime.Caller) *wasmtime.Memory {
	if k.guest != nil {
		return k.guest
	}
	if ext := c.GetExport(GuestMemory); ext != nil {
		return ext.Memory()
	}
	return nil
}

// CopyOut copies n bytes of the kernel memory, starting at address addr, into the calling
// guest's linear memory at dst: the bulk form of load_u64 (astrid_kernel_read). The same rule as
// load_*: the n bytes must lie inside one live block (addr need not be the block's start). dst
// and n must lie inside the guest's memory. Nothing is copied when a check fails; n = 0 copies
// nothing and checks only dst.
func (k *Kernel) CopyOut(c *wasmtime.Caller, addr, dst, n uint64) error {
	kern, guest, err := k.spans(c, "read", addr, dst, n)
	if err != nil {
		return err
	}
	copy(guest, kern)
	return nil
}

// CopyIn copies n bytes of the calling guest's linear memory, starting at src, into the kernel
// memory at address addr: the bulk form of store_u64 (astrid_kernel_write), with CopyOut's
// rules.
func (k *Kernel) CopyIn(c *wasmtime.Caller, addr, src, n uint64) error {
	kern, guest, err := k.spans(c, "write", addr, src, n)
	if err != nil {
		return err
	}
	copy(kern, guest)
	return nil
}

// spans checks a copy between the kernel and the guest and returns the two ranges: n bytes at
// addr in the kernel memory (inside one live block) and n bytes at off in the guest's memory.
// It is the one bounds check of CopyOut and CopyIn.
func (k *Kernel) spans(c *wasmtime.Caller, op string, addr, off, n uint64) (kern, guest []byte, err error) {
	gm := k.guestMemory(c)
	if gm == nil {
		return nil, nil, fmt.Errorf("extism kernel: %s: the guest exports no memory %q", op, GuestMemory)
	}
	st, kmem, gmem := k.memoryViews3(c, gm)
	guest, ok := span(gmem, off, n)
	if !ok {
		return nil, nil, fmt.Errorf("extism kernel: %s: %d bytes at offset %#x are outside the guest's %d-byte memory", op, n, off, len(gmem))
	}
	if n == 0 {
		return nil, guest, nil
	}
	start, length, live := lookupIn(st, addr)
	if !live {
		return nil, nil, fmt.Errorf("extism kernel: %s: address %#x (%d bytes) is outside every live block", op, addr, n)
	}
	// addr is inside the block, so addr-start < length.
	if n > length-(addr-start) {
		return nil, nil, fmt.Errorf("extism kernel: %s: %d bytes at address %#x run past the end of the %d-byte block %#x", op, n, addr, length, start)
	}
	if kern, ok = span(kmem, addr, n); !ok { // a live block lies inside the memory
		return nil, nil, fmt.Errorf("extism kernel: %s: the block %#x lies outside the kernel memory", op, start)
	}
	return kern, guest, nil
}

// span returns mem[off:off+n] if that range lies inside mem, without overflowing for any off
// and n.
func span(mem []byte, off, n uint64) ([]byte, bool) {
	size := uint64(len(mem))
	if off > size || n > size-off {
		return nil, false
	}
	return mem[off : off+n : off+n], true
}
