package astrid

import "encoding/binary"

// Var returns a copy of the value of variable key and whether it is set.
//
// Variables are the capsule's own state: byte values by string key, kept by
// the host for the life of the capsule instance, so that one call can leave
// something for the next (the kernel memory itself is reset between calls).
// They are not saved anywhere: they are lost when the instance ends (the
// capsule is unloaded or restarted). The host caps their total size, keys
// plus values, at 1 MiB, and a key at 4 KiB: a SetVar that would exceed the
// cap, or a key over the limit, traps the call, which the capsule cannot
// recover from.
//
// The kernel cannot hold an empty block, so an empty key names no variable
// and an empty value is the same as no value: Var("") returns nil, false.
func Var(key string) ([]byte, bool) {
	if key == "" {
		return nil, false
	}
	k := AllocateString(key)
	h := kernelVarGet(k.handle)
	k.Free()
	v := FindMemory(h)
	if v.handle == 0 {
		return nil, false
	}
	b := v.Bytes()
	v.Free()
	return b, true
}

// SetVar sets variable key to a copy of value; an empty value deletes the
// variable. It panics if key is empty, and the host traps the call if the
// variables' total size would exceed its cap.
func SetVar(key string, value []byte) {
	if key == "" {
		panic("astrid: SetVar: empty variable key")
	}
	k := AllocateString(key)
	v := AllocateBytes(value)
	kernelVarSet(k.handle, v.handle) // v.handle is 0 for an empty value: delete
	v.Free()
	k.Free()
}

// DeleteVar deletes variable key. Deleting a variable that is not set, or
// the empty key, does nothing.
func DeleteVar(key string) {
	if key == "" {
		return
	}
	k := AllocateString(key)
	kernelVarSet(k.handle, 0)
	k.Free()
}

// VarInt returns the integer stored in variable key by SetVarInt, and whether
// it holds one: ok is false if the variable is not set or its value is not 8
// bytes long. The encoding, 8 bytes little-endian, is the one Extism's PDKs
// use, so capsules written with them read the same numbers.
func VarInt(key string) (n int64, ok bool) {
	b, ok := Var(key)
	if !ok || len(b) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(b)), true
}

// SetVarInt sets variable key to n, stored as 8 bytes little-endian (see
// VarInt). It panics if key is empty.
func SetVarInt(key string, n int64) {
	SetVar(key, binary.LittleEndian.AppendUint64(nil, uint64(n)))
}
