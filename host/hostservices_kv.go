package host

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/internal/kvstore"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// The KV host functions (astrid_kv_*), with upstream's encodings and error texts: the entries
// live in the host's store (kvstore, STATE/kv.db) in the namespace
// "{principal}:capsule:{capsule}" of the principal the instance acts for, and count against the
// capsule's [limits] kv_bytes.
func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_KV_GET] = kvGet
	hostCallHandlers[pb.HostOp_HOST_OP_KV_SET] = kvSet
	hostCallHandlers[pb.HostOp_HOST_OP_KV_DELETE] = kvDelete
	hostCallHandlers[pb.HostOp_HOST_OP_KV_LIST_KEYS] = kvListKeys
	hostCallHandlers[pb.HostOp_HOST_OP_KV_CLEAR_PREFIX] = kvClearPrefix
}

// maxKVListBytes bounds astrid_kv_list_keys's JSON: 10 MiB, the most a guest takes in one block.
const maxKVListBytes = shared.MaxPayloadBytes

// storeFuncPrefixes start the names of the host functions that use the host's database (the KV
// functions, the identity functions and astrid_request_approval, whose approve_always allowances
// live there): a capsule that imports one has the host open it when it loads (usesStore).
var storeFuncPrefixes = []string{"astrid_kv_", "astrid_identity_", "astrid_request_approval"}

// usesStore returns the first host function among a module's imports that uses the host's
// database, "" for none.
func usesStore(imports []string) string {
	for _, name := range imports {
		for _, p := range storeFuncPrefixes {
			if strings.HasPrefix(name, p) {
				return name
			}
		}
	}
	return ""
}

// kvStore is the host's store, opened on first use, and the instance's namespace: the principal
// it acts for now (the caller's, during an interceptor invocation) and the capsule.
func (s *hostServices) kvStore() (*kvstore.Store, kvstore.Namespace, error) {
	ns := kvstore.Namespace{Principal: s.inst.effectivePrincipal(), Capsule: s.inst.ID()}
	st, err := s.inst.host.kv.Store()
	return st, ns, err
}

// kvKey is a key as upstream reads it: bytes that are not UTF-8 become the empty key (which the
// store then refuses: "invalid key: key must not be empty").
func kvKey(b []byte) string {
	if !utf8.Valid(b) {
		return ""
	}
	return string(b)
}

// kvPrefix is a prefix, which must be UTF-8: otherwise the guest's call traps with upstream's
// text (a plain error, not a guestFailure: HostResult functions trap too).
func kvPrefix(fn string, b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s prefix is not valid UTF-8: %s", fn, rustUTF8Error(b))
	}
	return string(b), nil
}

// kvGet: astrid_kv_get(key) → HostResult: the value, empty when the key is missing.
func kvGet(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	st, ns, err := s.kvStore()
	if err != nil {
		return nil, guestFailed("kv_get failed: %v", err)
	}
	v, _, err := st.Get(ns, kvKey(args[0]))
	if err != nil {
		return nil, guestFailed("kv_get failed: %v", err)
	}
	return v, nil
}

// kvSet: astrid_kv_set(key, value), void: it returns once the write is committed and synced; a
// failure (an invalid key, the quota) traps the guest's call.
func kvSet(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	st, ns, err := s.kvStore()
	if err != nil {
		return nil, guestFailed("kv_set failed: %v", err)
	}
	if err := st.Set(ns, kvKey(args[0]), args[1], s.inst.manifest.Limits.KVBytes); err != nil {
		return nil, guestFailed("kv_set failed: %v", err)
	}
	return nil, nil
}

// kvDelete: astrid_kv_delete(key), void: deleting a missing key is no error.
func kvDelete(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	st, ns, err := s.kvStore()
	if err != nil {
		return nil, guestFailed("kv_delete failed: %v", err)
	}
	if _, err := st.Delete(ns, kvKey(args[0])); err != nil {
		return nil, guestFailed("kv_delete failed: %v", err)
	}
	return nil, nil
}

// kvListKeys: astrid_kv_list_keys(prefix) → HostResult: a JSON array of the keys that start
// with prefix, in byte order, at most maxKVListBytes of it.
func kvListKeys(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	prefix, err := kvPrefix("kv_list_keys", args[0])
	if err != nil {
		return nil, err
	}
	st, ns, err := s.kvStore()
	if err != nil {
		return nil, guestFailed("kv_list_keys failed: %v", err)
	}
	out := []byte{'['}
	err = st.ListKeys(ns, prefix, func(key string) error {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = appendJSONString(out, key)
		if len(out)+1 > maxKVListBytes {
			return fmt.Errorf("the keys with this prefix come to more than %d bytes (10 MiB) of JSON, the most one result holds; list them by longer prefixes", maxKVListBytes)
		}
		return nil
	})
	if err != nil {
		return nil, guestFailed("kv_list_keys failed: %v", err)
	}
	return append(out, ']'), nil
}

// kvClearPrefix: astrid_kv_clear_prefix(prefix) → HostResult: the JSON number of keys deleted,
// all in one transaction.
func kvClearPrefix(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	prefix, err := kvPrefix("kv_clear_prefix", args[0])
	if err != nil {
		return nil, err
	}
	st, ns, err := s.kvStore()
	if err != nil {
		return nil, guestFailed("kv_clear_prefix failed: %v", err)
	}
	n, err := st.ClearPrefix(ns, prefix)
	if err != nil {
		return nil, guestFailed("kv_clear_prefix failed: %v", err)
	}
	return strconv.AppendUint(nil, n, 10), nil
}

// appendJSONString appends s as a JSON string the way serde_json writes one (upstream's
// encoder): only '"', '\\' and control characters are escaped (\b \t \n \f \r, otherwise
// \u00XX in lower-case hex); everything else, U+2028 and '<' included, is written as it is.
func appendJSONString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\b':
			out = append(out, '\\', 'b')
		case c == '\t':
			out = append(out, '\\', 't')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\f':
			out = append(out, '\\', 'f')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// rustUTF8Error describes the first invalid UTF-8 in b as Rust's Utf8Error does (upstream's
// texts quote it): "invalid utf-8 sequence of N bytes from index I", or "incomplete utf-8 byte
// sequence from index I" when b ends inside a sequence.
func rustUTF8Error(b []byte) string {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		// Rust's from_utf8: how many bytes of a well-started sequence are valid, and whether
		// the input ends before the sequence does.
		// (DecodeRune and Rust refuse the same sequences.)
		n, cut := utf8ValidPart(b[i:])
		if cut {
			return fmt.Sprintf("incomplete utf-8 byte sequence from index %d", i)
		}
		return fmt.Sprintf("invalid utf-8 sequence of %d bytes from index %d", n, i)
	}
	return "invalid utf-8"
}
