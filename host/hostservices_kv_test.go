package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/astrid-go/astrid/host/internal/kvstore"
	"github.com/astrid-go/astrid/host/manifest"
)

func TestRustUTF8Error(t *testing.T) {
	// Rust's Utf8Error texts for these inputs (String::from_utf8(..).unwrap_err().to_string()).
	for _, tt := range []struct{ in, want string }{
		{"\xff", "invalid utf-8 sequence of 1 bytes from index 0"},
		{"ok\xf5", "invalid utf-8 sequence of 1 bytes from index 2"},
		{"\xc0\x80", "invalid utf-8 sequence of 1 bytes from index 0"},
		{"\xe2\x28\xa1", "invalid utf-8 sequence of 1 bytes from index 0"},
		{"\xe2\x82\x28", "invalid utf-8 sequence of 2 bytes from index 0"},
		{"\xed\xa0\x80", "invalid utf-8 sequence of 1 bytes from index 0"},
		{"\xf0\x9f\x98\x28", "invalid utf-8 sequence of 3 bytes from index 0"},
		{"\xf4\x90\x80\x80", "invalid utf-8 sequence of 1 bytes from index 0"},
		{"ab\xe2\x82", "incomplete utf-8 byte sequence from index 2"},
		{"é\xf0\x9f\x98", "incomplete utf-8 byte sequence from index 2"},
		{"\xef\xbf\xbd\xff", "invalid utf-8 sequence of 1 bytes from index 3"},
	} {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := rustUTF8Error([]byte(tt.in)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\b\t\n\f\r\x00\x1f", `"\b\t\n\f\r\u0000\u001f"`},
		{"<&>\u2028é\x7f", "\"<&>\u2028é\x7f\""},
	} {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// kvTestServices is the host side of a capsule's KV functions, on a store of its own.
func kvTestServices(t *testing.T) (*hostServices, *kvstore.Store) {
	t.Helper()
	m, _, err := manifest.Parse("", []byte("[package]\nname = \"lister\"\nversion = \"0.1.0\"\nastrid-version = \">=0.5.0\"\n[[component]]\nfile = \"l.wasm\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	kv := kvstore.NewLazy(t.TempDir())
	t.Cleanup(func() { kv.Close() })
	st, err := kv.Store()
	if err != nil {
		t.Fatal(err)
	}
	inst := &Instance{manifest: m, host: &Host{kv: kv}, ipc: newInstanceIPC(m)}
	return &hostServices{inst: inst}, st
}

// TestKVListKeysBounded: a capsule that stores more keys than one result holds gets an error
// naming the limit, not a result the host builds without bound.
func TestKVListKeysBounded(t *testing.T) {
	s, st := kvTestServices(t)
	ns := kvstore.Namespace{Principal: s.inst.effectivePrincipal(), Capsule: "lister"}
	// 2600 keys of 4 KiB: more than 10 MiB of JSON.
	const n, writers = 2600, 26
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				key := fmt.Sprintf("big.%06d.", i) + strings.Repeat("k", 4096-11)
				if err := st.Set(ns, key, nil, 1<<40); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, tt := range []struct {
		prefix, wantErr string
		wantLen         int
	}{
		{"big.", "kv_list_keys failed: the keys with this prefix come to more than 10485760 bytes (10 MiB) of JSON", 0},
		{"big.000007", "", 4096 + 4},
	} {
		t.Run(tt.prefix, func(t *testing.T) {
			out, err := kvListKeys(context.Background(), s, [][]byte{[]byte(tt.prefix)})
			var gf *guestFailure
			switch {
			case tt.wantErr != "":
				if !errors.As(err, &gf) || !strings.Contains(gf.msg, tt.wantErr) {
					t.Fatalf("%d bytes, %v; want the guest error %q", len(out), err, tt.wantErr)
				}
			case err != nil || len(out) != tt.wantLen:
				t.Fatalf("%d bytes, %v; want %d", len(out), err, tt.wantLen)
			}
		})
	}
}
