package kernel

/*
#include <stddef.h>
#include <stdint.h>

// The two functions of wasmtime's C API (wasmtime/memory.h) that wasmtime-go's Memory.Data and
// Memory.DataSize call; wasmtime-go links the library. The context and the memory are opaque
// here: they are passed through as wasmtime-go made them.
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_memory wasmtime_memory_t;
typedef struct wasmtime_caller wasmtime_caller_t;
extern wasmtime_context_t *wasmtime_caller_context(wasmtime_caller_t *caller);
extern uint8_t *wasmtime_memory_data(const wasmtime_context_t *store, const wasmtime_memory_t *memory);
extern size_t wasmtime_memory_data_size(const wasmtime_context_t *store, const wasmtime_memory_t *memory);

typedef struct {
	uint8_t *data[2];
	size_t len[2];
} astrid_views_t;

// astrid_memory_t holds a wasmtime_memory_t (24 bytes: its first member is a struct of 16),
// passed by value: Go checks every Go pointer passed to C (cgocheck), which cost as much as the
// call itself.
typedef struct {
	uint64_t w[3];
} astrid_memory_t;

// astrid_memory_views returns the data and size of memories a and b of the Store of a host
// function's caller (a wasmtime_caller_t): one call from Go instead of eight.
static astrid_views_t astrid_memory_views(uintptr_t caller, astrid_memory_t a, astrid_memory_t b) {
	astrid_views_t v = {{0}, {0}};
	wasmtime_context_t *ctx = wasmtime_caller_context((wasmtime_caller_t *)caller);
	v.data[0] = wasmtime_memory_data(ctx, (const wasmtime_memory_t *)&a);
	v.len[0] = wasmtime_memory_data_size(ctx, (const wasmtime_memory_t *)&a);
	v.data[1] = wasmtime_memory_data(ctx, (const wasmtime_memory_t *)&b);
	v.len[1] = wasmtime_memory_data_size(ctx, (const wasmtime_memory_t *)&b);
	return v;
}
*/
import "C"

import (
	"runtime"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shim/internal/hostfn"
)

// memoryViews returns the index and data memories of k as byte slices, as
// k.idx.UnsafeData(caller) and k.mem.UnsafeData(caller) would, with one call into C where those
// make eight (each UnsafeData asks wasmtime for the caller's context twice, then the data and
// the size; a call into C costs ~40 ns of the Go runtime's bookkeeping, and each guest publish
// made eight of them). It passes the caller's wasmtime_caller_t as hostfn.CallerPtr gets it, and
// each *wasmtime.Memory's one field, the wasmtime_memory_t that wasmtime-go itself passes, by
// value (TestMemoryViewsLayout pins that). The slices are valid until the memories grow or the
// host function returns.
func (k *Kernel) memoryViews(caller *wasmtime.Caller) (idx, mem []byte) {
	v := C.astrid_memory_views(C.uintptr_t(uintptr(hostfn.CallerPtr(caller))), memoryValue(k.idx), memoryValue(k.mem))
	view := func(i int) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(v.data[i])), int(v.len[i])) }
	runtime.KeepAlive(caller)
	return view(0), view(1)
}

// memoryValue is m's wasmtime_memory_t.
func memoryValue(m *wasmtime.Memory) C.astrid_memory_t {
	return *(*C.astrid_memory_t)(unsafe.Pointer(m))
}
