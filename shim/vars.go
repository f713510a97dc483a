package shim

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// MaxVarBytes caps the total size of a capsule instance's variables (keys plus values): 1 MiB.
const MaxVarBytes = 1 << 20

// varStore holds a capsule instance's variables (extism var_get/var_set). They live in the shim,
// outside any Store, so they survive calls and the fresh Store that follows a trap; they end with
// the instance.
type varStore struct {
	vars  map[string][]byte
	bytes int
}

func newVarStore() *varStore { return &varStore{vars: map[string][]byte{}} }

func (s *varStore) get(key string) ([]byte, bool) {
	v, ok := s.vars[key]
	return v, ok
}

// set stores value under key (nil deletes it), refusing to grow past MaxVarBytes.
func (s *varStore) set(key string, value []byte) error {
	old, had := s.vars[key]
	size := s.bytes
	if had {
		size -= len(key) + len(old)
	}
	if value == nil {
		delete(s.vars, key)
		s.bytes = size
		return nil
	}
	if size+len(key)+len(value) > MaxVarBytes {
		return fmt.Errorf("setting %q (%d bytes) would make the capsule's variables %d bytes; the limit is %d bytes (1 MiB)",
			key, len(value), size+len(key)+len(value), MaxVarBytes)
	}
	s.vars[key] = value
	s.bytes = size + len(key) + len(value)
	return nil
}

// varGet: var_get(key) -> value, or 0 when the variable is not set.
func (v *env) varGet(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	key, err := readKey(c, k, uint64(args[0].I64()))
	if err != nil {
		return nil, err
	}
	value, ok := v.vars.get(key)
	if !ok {
		return []wasmtime.Val{wasmtime.ValI64(0)}, nil
	}
	return returnBytes(c, k, value)
}

// varSet: var_set(key, value); a value handle of 0 deletes the variable.
func (v *env) varSet(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	key, err := readKey(c, k, uint64(args[0].I64()))
	if err != nil {
		return nil, err
	}
	var value []byte
	if h := uint64(args[1].I64()); h != 0 {
		if value, err = k.ReadCaller(c, h); err != nil {
			return nil, fmt.Errorf("value handle %#x: %w", h, err)
		}
		if value == nil {
			value = []byte{}
		}
	}
	return nil, v.vars.set(key, value)
}
