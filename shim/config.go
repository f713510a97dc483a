package shim

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shim/kernel"
)

// MaxConfigKeyBytes caps the key of a config_get call: 4 KiB, upstream's MAX_KEY_LEN.
const MaxConfigKeyBytes = 4 << 10

// goImports are the extism:host/env functions implemented in Go (the rest are the kernel's).
var goImports = []string{"config_get"}

// defineConfigGet provides extism:host/env config_get(key) -> value: the value of a key of the
// capsule's configuration (its [env] values and the operator's --config), or 0 when the key is not
// set. The configuration came from the host at load; the guest cannot change it.
func defineConfigGet(linker *wasmtime.Linker, k *kernel.Kernel, config map[string]string) error {
	i64 := wasmtime.NewValType(wasmtime.KindI64)
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{i64}, []*wasmtime.ValType{i64})
	return linker.FuncNew(kernel.ModuleName, "config_get", ty,
		func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			h := uint64(args[0].I64())
			key, err := k.ReadCaller(c, h)
			if err != nil {
				return nil, wasmtime.NewTrap(fmt.Sprintf("config_get: key handle %#x: %v", h, err))
			}
			if len(key) > MaxConfigKeyBytes {
				return nil, wasmtime.NewTrap(fmt.Sprintf("config_get: the key is %d bytes; keys are at most %d bytes", len(key), MaxConfigKeyBytes))
			}
			value, ok := config[string(key)]
			if !ok {
				return []wasmtime.Val{wasmtime.ValI64(0)}, nil
			}
			out, err := k.AllocCaller(c, []byte(value))
			if err != nil {
				return nil, wasmtime.NewTrap(fmt.Sprintf("config_get: %v", err))
			}
			return []wasmtime.Val{wasmtime.ValI64(int64(out))}, nil
		})
}
