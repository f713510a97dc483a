package kernel

/*
#include <stddef.h>
#include <stdint.h>

// The two functions of wasmtime's C API (wasmtime/memory.h) that wasmtime-go's Memory.Data and
// Memory.DataSize call; wasmtime-go links the library. The context and the memory are opaque
// here: they are passed through as wasmtime-go made them.
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_memory wasmtime_memory_t;
extern uint8_t *wasmtime_memory_data(const wasmtime_context_t *store, const wasmtime_memory_t *memory);
extern size_t wasmtime_memory_data_size(const wasmtime_context_t *store, const wasmtime_memory_t *memory);

typedef struct {
	uint8_t *a;
	size_t a_len;
	uint8_t *b;
	size_t b_len;
} astrid_views_t;

// astrid_memory_views returns the data and size of memories a and b: one call from Go instead of
// four.
static astrid_views_t astrid_memory_views(void *ctx, void *a, void *b) {
	astrid_views_t v;
	v.a = wasmtime_memory_data(ctx, a);
	v.a_len = wasmtime_memory_data_size(ctx, a);
	v.b = wasmtime_memory_data(ctx, b);
	v.b_len = wasmtime_memory_data_size(ctx, b);
	return v;
}
*/
import "C"

import (
	"runtime"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// memoryViews returns the index and data memories of k as byte slices, as
// k.idx.UnsafeData(caller) and k.mem.UnsafeData(caller) would, with two calls into C where those
// make eight (each UnsafeData asks wasmtime for the caller's context twice, then the data and
// the size; a call into C costs ~40 ns of the Go runtime's bookkeeping, and each guest publish
// made eight of them). It passes each *wasmtime.Memory to C as a pointer to its one field, the
// wasmtime_memory_t that wasmtime-go itself passes (TestMemoryViewsLayout pins that). The slices
// are valid until the memories grow or the host function returns.
func (k *Kernel) memoryViews(caller *wasmtime.Caller) (idx, mem []byte) {
	ctx := unsafe.Pointer(caller.Context())
	v := C.astrid_memory_views(ctx, unsafe.Pointer(k.idx), unsafe.Pointer(k.mem))
	idx = unsafe.Slice((*byte)(unsafe.Pointer(v.a)), int(v.a_len))
	mem = unsafe.Slice((*byte)(unsafe.Pointer(v.b)), int(v.b_len))
	runtime.KeepAlive(caller)
	return idx, mem
}
