//go:build wasip1 && !tinygo

package astrid

import "unsafe"

// mallocgc is the Go runtime's allocator. Its signature is fixed: the runtime keeps it
// for the packages that link to it (go.dev/issue/67401).
//
//go:linkname mallocgc runtime.mallocgc
func mallocgc(size uintptr, typ unsafe.Pointer, needzero bool) unsafe.Pointer

// makeNoZero returns a new byte slice of length n whose content is unspecified, for a caller
// that overwrites all of it at once: make clears it first, and in a capsule that is a
// memory.fill of every envelope Recv reads (hundreds of KB at a time), ~5% of a busy
// subscriber's CPU. typ nil: memory without pointers.
func makeNoZero(n int) []byte {
	if n <= 0 {
		return make([]byte, n) // empty, or make's panic for a negative length
	}
	return unsafe.Slice((*byte)(mallocgc(uintptr(n), nil, false)), n)
}
