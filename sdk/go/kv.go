package astrid

import (
	"encoding/json"
	"errors"
	"fmt"
)

// KV: a capsule's durable key-value store, kept by the host (astrid_kv_* host functions).
//
// Values survive the capsule's restarts and the host's: they are stored on disk in the host's
// state directory. Each capsule has its own namespace, "{principal}:capsule:{name}": during an
// interceptor invocation for a message of another principal, the functions here read and
// write that principal's namespace instead, so one capsule keeps each user's data apart
// without doing anything. The host caps a capsule's stored keys and values at its
// [limits] kv_bytes (default 64 MiB).
//
// Keys are strings of at most MaxKVKeyBytes; values are bytes of at most MaxKVValueBytes. As
// upstream, a key that does not exist reads as an empty value: KVGet cannot tell a missing key
// from one set to nothing.

// Limits of the KV functions (the host's, which traps the call on a longer argument; the
// functions here return an error instead, without calling it).
const (
	// MaxKVKeyBytes is the longest key or prefix: 4 KiB.
	MaxKVKeyBytes = 4 << 10
	// MaxKVValueBytes is the largest value KVSet stores: 10 MiB.
	MaxKVValueBytes = 10 << 20
)

// KVGet returns the value of key in the capsule's store: empty (not nil) when key is not set.
// A failure the host reports (the store cannot be read) is a *HostError.
func KVGet(key string) ([]byte, error) {
	if err := checkLen("KVGet", "key", len(key), MaxKVKeyBytes); err != nil {
		return nil, err
	}
	v, err := decodeHostResult("astrid_kv_get", callHost(hostKVGet, []byte(key)))
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// KVSet sets key to a copy of value in the capsule's store, durably: once KVSet returns, the
// value survives a crash of the capsule or the host. The host traps the call when it cannot
// store it, for instance when the capsule's [limits] kv_bytes would be exceeded. KVSet returns
// an error, without calling the host, for a key or value over its limit.
func KVSet(key string, value []byte) error {
	if err := checkLen("KVSet", "key", len(key), MaxKVKeyBytes); err != nil {
		return err
	}
	if err := checkLen("KVSet", "value", len(value), MaxKVValueBytes); err != nil {
		return err
	}
	k := AllocateString(key)
	v := AllocateBytes(value)
	hostKVSet(k.handle, v.handle)
	v.Free()
	k.Free()
	return nil
}

// KVGetJSON decodes the value of key into v with encoding/json. A key that is not set holds
// nothing, which is not JSON: KVGetJSON then returns ErrKVNotSet and leaves v alone.
func KVGetJSON(key string, v any) error {
	b, err := KVGet(key)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return ErrKVNotSet
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("astrid: KVGetJSON %q: decoding %.200q: %w", key, b, err)
	}
	return nil
}

// ErrKVNotSet is KVGetJSON's error for a key that holds nothing.
var ErrKVNotSet = errors.New("astrid: KV key not set")

// KVSetJSON sets key to v encoded with encoding/json (see KVSet).
func KVSetJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("astrid: KVSetJSON %q: encoding the value: %w", key, err)
	}
	return KVSet(key, b)
}

// KVDelete removes key from the capsule's store. Deleting a key that is not set is not an
// error. The host traps the call when it cannot delete it.
func KVDelete(key string) error {
	if err := checkLen("KVDelete", "key", len(key), MaxKVKeyBytes); err != nil {
		return err
	}
	k := AllocateString(key)
	hostKVDelete(k.handle)
	k.Free()
	return nil
}

// KVListKeys returns the keys of the capsule's store that start with prefix (every key for
// ""), empty (not nil) when there are none. A failure the host reports is a *HostError.
func KVListKeys(prefix string) ([]string, error) {
	if err := checkLen("KVListKeys", "prefix", len(prefix), MaxKVKeyBytes); err != nil {
		return nil, err
	}
	return decodeNames("astrid_kv_list_keys", callHost(hostKVListKeys, []byte(prefix)))
}

// KVClearPrefix deletes every key of the capsule's store that starts with prefix (every key
// for "") and returns how many it deleted. A failure the host reports is a *HostError.
func KVClearPrefix(prefix string) (uint64, error) {
	if err := checkLen("KVClearPrefix", "prefix", len(prefix), MaxKVKeyBytes); err != nil {
		return 0, err
	}
	return decodeCount(callHost(hostKVClearPrefix, []byte(prefix)))
}

// checkLen returns an error naming op and what when n bytes are over max.
func checkLen(op, what string, n, max int) error {
	if n > max {
		return fmt.Errorf("astrid: %s: %s of %d bytes is over the host's limit of %d bytes", op, what, n, max)
	}
	return nil
}
