package kernel

import (
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// memoryViews passes a *wasmtime.Memory to C as a pointer to its wasmtime_memory_t: the struct
// must be that value and nothing else.
func TestMemoryViewsLayout(t *testing.T) {
	ty := reflect.TypeOf(wasmtime.Memory{})
	if ty.NumField() != 1 || ty.Field(0).Name != "val" || ty.Field(0).Offset != 0 || ty.Field(0).Type.Size() != ty.Size() {
		t.Fatalf("wasmtime.Memory is not just its wasmtime_memory_t value: %d fields", ty.NumField())
	}
}

// checkMemoryViews reports whether memoryViews sees the kernel's memories exactly as
// wasmtime-go's UnsafeData does (the same start and length); the test host function
// upper_caller calls it, so TestHostFunctions covers memories grown by the call.
func checkMemoryViews(c *wasmtime.Caller, k *Kernel) error {
	idx, mem := k.memoryViews(c)
	for _, m := range []struct {
		name      string
		got, want []byte
	}{{"idx", idx, k.idx.UnsafeData(c)}, {"mem", mem, k.mem.UnsafeData(c)}} {
		if len(m.got) != len(m.want) || unsafe.SliceData(m.got) != unsafe.SliceData(m.want) {
			return fmt.Errorf("memoryViews: %s is %d bytes at %p, UnsafeData %d bytes at %p",
				m.name, len(m.got), unsafe.SliceData(m.got), len(m.want), unsafe.SliceData(m.want))
		}
	}
	return nil
}
