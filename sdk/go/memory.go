package astrid

import (
	"encoding/binary"
	"runtime"
	"strconv"
	"unsafe"
)

// Memory is a block of the kernel memory: the memory, separate from the
// capsule's own linear memory, through which the capsule and the host
// exchange data. Host functions take and return blocks by their handle.
//
// A Memory is a small value (a handle and a length) and may be copied freely;
// the copies refer to the same block. The zero Memory is the empty block with
// handle 0. Blocks live until they are freed or the current call ends (the
// kernel is reset between calls), so a Memory must not be kept across calls.
type Memory struct {
	handle uint64
	length uint64
}

// Allocate returns a new block of n bytes whose content is unspecified.
// Allocate(0) returns the zero Memory without calling the kernel. It panics
// if n is negative or the kernel memory is exhausted.
func Allocate(n int) Memory {
	if n < 0 {
		panic("astrid: Allocate: negative size " + strconv.Itoa(n))
	}
	if n == 0 {
		return Memory{}
	}
	h := kernelAlloc(uint64(n))
	if h == 0 {
		panic("astrid: kernel memory exhausted allocating " + strconv.Itoa(n) + " bytes")
	}
	return Memory{handle: h, length: uint64(n)}
}

// AllocateBytes returns a new block holding a copy of b (the zero Memory if
// b is empty). It panics if the kernel memory is exhausted.
func AllocateBytes(b []byte) Memory {
	m := Allocate(len(b))
	m.Store(b)
	return m
}

// AllocateString returns a new block holding the bytes of s (the zero Memory
// if s is empty). It panics if the kernel memory is exhausted.
func AllocateString(s string) Memory {
	// Store only reads the bytes: s's own, without the copy (or, over 32 bytes, the
	// allocation) of a conversion.
	return AllocateBytes(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// FindMemory returns the block with handle h, typically one returned by a
// host function, with the length the kernel reports for it. It returns the
// zero Memory if h is 0 or not a live block.
func FindMemory(h uint64) Memory {
	if h == 0 {
		return Memory{}
	}
	n := kernelLength(h)
	if n == 0 {
		return Memory{}
	}
	return Memory{handle: h, length: n}
}

// Handle returns the block's handle (0 for the zero Memory), the value that
// host functions take as a parameter.
func (m Memory) Handle() uint64 { return m.handle }

// Len returns the block's length in bytes.
func (m Memory) Len() int { return int(m.length) }

// Bytes returns a copy of the block's content.
func (m Memory) Bytes() []byte {
	b := makeNoZero(int(m.length)) // Load writes every byte
	m.Load(b)
	return b
}

// Load copies the first len(dst) bytes of the block into dst. It panics if
// dst is longer than the block.
func (m Memory) Load(dst []byte) {
	m.check("Load", len(dst))
	loadKernel(m.handle, dst)
}

// Store copies src to the start of the block. It panics if src is longer
// than the block.
func (m Memory) Store(src []byte) {
	m.check("Store", len(src))
	n := len(src)
	if n >= bulkCopyMin {
		hostKernelWrite(m.handle, linearAddr(src), uint64(n))
		runtime.KeepAlive(src)
		return
	}
	storeKernel(m.handle, src)
}

// storeKernel copies src, shorter than bulkCopyMin, to the kernel memory at addr, which must lie
// inside one live block with room for len(src) bytes: 8 bytes per kernel call, the last 8 bytes
// (overlapping the word before) in one call when there are at least 8, so that a topic or a
// handle costs a call or two rather than one a byte.
func storeKernel(addr uint64, src []byte) {
	n := len(src)
	if n < 8 {
		for i := range n {
			kernelStoreU8(addr+uint64(i), uint32(src[i]))
		}
		return
	}
	for i := 0; i+8 < n; i += 8 {
		kernelStoreU64(addr+uint64(i), binary.LittleEndian.Uint64(src[i:]))
	}
	kernelStoreU64(addr+uint64(n-8), binary.LittleEndian.Uint64(src[n-8:]))
}

// bulkCopyMin is the size from which Load and Store copy with one
// astrid_kernel_read or astrid_kernel_write call instead of one kernel load or
// store per 8 bytes. Both stay in WebAssembly (the shim's kernel serves the
// bulk copies with memory.copy); a bulk copy costs about as much as three
// 8-byte calls, so it is the cheaper from 24 bytes (measured in a Go guest:
// 31 ns against 31 ns for 24 bytes, 38 for 32, 240 for 256).
const bulkCopyMin = 24

// loadKernel copies len(dst) bytes of the kernel memory at addr, which must
// lie inside one live block, into dst.
func loadKernel(addr uint64, dst []byte) {
	n := len(dst)
	if n >= bulkCopyMin {
		hostKernelRead(addr, linearAddr(dst), uint64(n))
		runtime.KeepAlive(dst)
		return
	}
	if n < 8 {
		for i := range n {
			dst[i] = byte(kernelLoadU8(addr + uint64(i)))
		}
		return
	}
	// 8 bytes per kernel call, the last 8 (overlapping the word before) in one, as storeKernel.
	for i := 0; i+8 < n; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], kernelLoadU64(addr+uint64(i)))
	}
	binary.LittleEndian.PutUint64(dst[n-8:], kernelLoadU64(addr+uint64(n-8)))
}

// linearAddr is the address of b's first byte in the capsule's linear memory,
// the form in which astrid_kernel_read and astrid_kernel_write take it (Go's
// garbage collector does not move objects; the caller keeps b alive across
// the call).
func linearAddr(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// Free releases the block. Freeing the zero Memory does nothing; a block must
// not be used after it is freed, through this Memory or any copy of it.
func (m Memory) Free() {
	if m.handle != 0 {
		kernelFree(m.handle)
	}
}

// check panics if n bytes do not fit in the block. The kernel would trap on
// an access outside the block anyway; the panic says where and why.
func (m Memory) check(op string, n int) {
	if uint64(n) > m.length {
		panic("astrid: Memory." + op + ": " + strconv.Itoa(n) + " bytes do not fit in a block of " +
			strconv.FormatUint(m.length, 10) + " bytes")
	}
}
