package kernel

import (
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// memoryViews passes a *wasmtime.Memory's wasmtime_memory_t to C by value, as astrid_memory_t: the
// struct must be that value and nothing else.
func TestMemoryViewsLayout(t *testing.T) {
	ty := reflect.TypeOf(wasmtime.Memory{})
	if ty.NumField() != 1 || ty.Field(0).Name != "val" || ty.Field(0).Offset != 0 || ty.Field(0).Type.Size() != ty.Size() ||
		ty.Size() != unsafe.Sizeof(memoryValue(nil)) {
		t.Fatalf("wasmtime.Memory is not just its wasmtime_memory_t value: %d fields", ty.NumField())
	}
}

// viewCase is one of checkMemoryViews's comparisons.
type viewCase struct {
	name      string
	got, want []byte
}

// checkMemoryViews reports whether memoryViews sees the kernel's memories exactly as
// wasmtime-go's UnsafeData does (the same start and length); the test host function upper_caller
// calls it, so TestHostFunctions covers memories grown by the call.
func checkMemoryViews(c *wasmtime.Caller, k *Kernel) error {
	idx, mem := k.memoryViews(c)
	cases := []viewCase{{"idx", idx, k.idx.UnsafeData(c)}, {"mem", mem, k.mem.UnsafeData(c)}}
	for _, m := range cases {
		if len(m.got) != len(m.want) || unsafe.SliceData(m.got) != unsafe.SliceData(m.want) {
			return fmt.Errorf("memoryViews: %s is %d bytes at %p, UnsafeData %d bytes at %p",
				m.name, len(m.got), unsafe.SliceData(m.got), len(m.want), unsafe.SliceData(m.want))
		}
	}
	return nil
}
