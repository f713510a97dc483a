package astrid

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeHostResult(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		hostErr string // the *HostError's message
		errHas  string // another error's text
	}{
		{"ok with data", []byte("\x00value"), []byte("value"), "", ""},
		{"ok empty", []byte{0}, []byte{}, "", ""},
		{"ok binary", []byte{0, 0, 1, 0xff}, []byte{0, 1, 0xff}, "", ""},
		{"error", []byte("\x01kv_get failed: boom"), nil, "kv_get failed: boom", ""},
		{"error empty", []byte{1}, nil, "", ""},
		{"empty block", nil, nil, "", "empty result"},
		{"bad status", []byte{2, 'x'}, nil, "", "status byte 0x02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeHostResult("astrid_kv_get", tt.in)
			var he *HostError
			switch {
			case tt.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || errors.As(err, &he) {
					t.Fatalf("err = %v, want a plain error containing %q", err, tt.errHas)
				}
			case tt.hostErr != "" || (len(tt.in) > 0 && tt.in[0] == 1):
				if !errors.As(err, &he) || he.Message != tt.hostErr || he.Func != "astrid_kv_get" {
					t.Fatalf("err = %#v, want HostError %q", err, tt.hostErr)
				}
				if want := "astrid: astrid_kv_get: " + tt.hostErr; err.Error() != want {
					t.Fatalf("Error() = %q, want %q", err.Error(), want)
				}
			default:
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("= %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}

func TestDecodeTypedResults(t *testing.T) {
	t.Run("exists", func(t *testing.T) {
		for _, tt := range []struct {
			in   string
			want bool
			ok   bool
		}{{"\x00true", true, true}, {"\x00", false, true}, {"\x00false", false, true}, {"\x00yes", false, false}, {"\x01denied", false, false}} {
			got, err := decodeExists([]byte(tt.in))
			if got != tt.want || (err == nil) != tt.ok {
				t.Errorf("decodeExists(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		}
	})
	t.Run("stat", func(t *testing.T) {
		fi, err := decodeStat([]byte("\x00" + `{"size":12,"isDir":false,"mtime":1700000000}`))
		if err != nil || fi != (FileInfo{Size: 12, Mtime: 1700000000}) || !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
			t.Fatalf("decodeStat = %+v, %v", fi, err)
		}
		if _, err := decodeStat([]byte("\x00{")); err == nil || !strings.Contains(err.Error(), "astrid_fs_stat") {
			t.Fatalf("bad JSON: err = %v", err)
		}
		if (FileInfo{}).ModTime() != (time.Time{}) {
			t.Fatal("ModTime of mtime 0 is not the zero Time")
		}
	})
	t.Run("names", func(t *testing.T) {
		for _, tt := range []struct {
			in   string
			want []string
			ok   bool
		}{{"\x00[\"a\",\"b\"]", []string{"a", "b"}, true}, {"\x00[]", []string{}, true}, {"\x00null", []string{}, true}, {"\x00[1]", nil, false}, {"\x01no", nil, false}} {
			got, err := decodeNames("astrid_fs_readdir", []byte(tt.in))
			if !reflect.DeepEqual(got, tt.want) || (err == nil) != tt.ok {
				t.Errorf("decodeNames(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
		}
	})
	t.Run("count", func(t *testing.T) {
		for _, tt := range []struct {
			in   string
			want uint64
			ok   bool
		}{{"\x003", 3, true}, {"\x000", 0, true}, {"\x00-1", 0, false}, {"\x00\"3\"", 0, false}, {"\x01x", 0, false}} {
			got, err := decodeCount([]byte(tt.in))
			if got != tt.want || (err == nil) != tt.ok {
				t.Errorf("decodeCount(%q) = %d, %v", tt.in, got, err)
			}
		}
	})
	t.Run("clock", func(t *testing.T) {
		for _, tt := range []struct {
			in   string
			want uint64
			ok   bool
		}{{"1700000000123", 1700000000123, true}, {" 5\n", 5, true}, {"", 0, false}, {"1.5", 0, false}, {"-3", 0, false}} {
			got, err := parseClockMS([]byte(tt.in))
			if got != tt.want || (err == nil) != tt.ok {
				t.Errorf("parseClockMS(%q) = %d, %v", tt.in, got, err)
			}
		}
	})
}

func TestDecodeCaller(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	tests := []struct {
		name string
		in   string
		want CallerContext
		ok   bool
		err  bool
	}{
		{"outside an invocation", `{}`, CallerContext{}, false, false},
		{"nothing", ``, CallerContext{}, false, false},
		{"full", `{"principal":"alice","source_id":"6f1c0000-0000-4000-8000-000000000001","timestamp":"2026-01-02T03:04:05.000006Z"}`,
			CallerContext{"alice", "6f1c0000-0000-4000-8000-000000000001", ts}, true, false},
		{"null principal", `{"principal":null,"source_id":"x","timestamp":"2026-01-02T03:04:05.000006Z"}`,
			CallerContext{"", "x", ts}, true, false},
		{"bad timestamp", `{"principal":"a","timestamp":"yesterday"}`, CallerContext{}, false, true},
		{"not JSON", `[`, CallerContext{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := decodeCaller([]byte(tt.in))
			if (err != nil) != tt.err || ok != tt.ok || got.Principal != tt.want.Principal || got.SourceID != tt.want.SourceID || !got.Timestamp.Equal(tt.want.Timestamp) {
				t.Fatalf("= %+v, %v, %v; want %+v, %v, err=%v", got, ok, err, tt.want, tt.ok, tt.err)
			}
		})
	}
}

func TestHookAndCapabilityCodecs(t *testing.T) {
	t.Run("hook request", func(t *testing.T) {
		b, err := encodeHookRequest("tool.v1.before", map[string]int{"n": 1})
		if err != nil || string(b) != `{"hook":"tool.v1.before","payload":{"n":1}}` {
			t.Fatalf("= %s, %v", b, err)
		}
		if _, err := encodeHookRequest("", nil); err == nil {
			t.Fatal("empty hook accepted")
		}
		if _, err := encodeHookRequest("h", strings.Repeat("x", MaxHookRequestBytes)); err == nil || !strings.Contains(err.Error(), "over the host's limit of 1048576 bytes") {
			t.Fatalf("oversized request: err = %v", err)
		}
		if _, err := encodeHookRequest("h", func() {}); err == nil {
			t.Fatal("unencodable payload accepted")
		}
	})
	t.Run("hook results", func(t *testing.T) {
		rs, err := decodeHookResults([]byte(`[{"a":1}, 2]`))
		if err != nil || len(rs) != 2 || string(rs[0]) != `{"a":1}` || string(rs[1]) != `2` {
			t.Fatalf("= %q, %v", rs, err)
		}
		if rs, err := decodeHookResults([]byte(`null`)); err != nil || rs == nil || len(rs) != 0 {
			t.Fatalf("null = %#v, %v", rs, err)
		}
		if _, err := decodeHookResults([]byte(`{}`)); err == nil {
			t.Fatal("object accepted as results")
		}
	})
	t.Run("capability", func(t *testing.T) {
		b, err := encodeCapabilityRequest("uuid-1", "allow_prompt_injection")
		if err != nil || string(b) != `{"source_uuid":"uuid-1","capability":"allow_prompt_injection"}` {
			t.Fatalf("= %s, %v", b, err)
		}
		if _, err := encodeCapabilityRequest(strings.Repeat("u", 1000), "c"); err == nil {
			t.Fatal("oversized request accepted")
		}
		for in, want := range map[string]bool{`{"allowed":true}`: true, `{"allowed":false}`: false, `{}`: false, `{"allowed":"true"}`: false, `{"allowed":1}`: false} {
			if got, err := decodeCapabilityResult([]byte(in)); got != want || err != nil {
				t.Errorf("decodeCapabilityResult(%s) = %v, %v; want %v", in, got, err, want)
			}
		}
		if _, err := decodeCapabilityResult([]byte(`nope`)); err == nil {
			t.Fatal("non-JSON accepted")
		}
	})
}

func TestAstridHTTPCodecs(t *testing.T) {
	tests := []struct {
		name string
		req  HTTPRequest
		body string
		want string
		err  string
	}{
		{"get defaults", HTTPRequest{URL: "https://example.com/"}, "", `{"url":"https://example.com/","method":"GET","headers":{}}`, ""},
		{"post with body", HTTPRequest{URL: "https://x/", Method: "POST", Headers: map[string]string{"A": "b"}}, "hi",
			`{"url":"https://x/","method":"POST","headers":{"A":"b"},"body":"hi"}`, ""},
		{"empty URL", HTTPRequest{}, "", "", "empty URL"},
		{"body not UTF-8", HTTPRequest{URL: "https://x/"}, "\xff", "", "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeAstridHTTPRequest("HTTPSend", tt.req, tt.body)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(b) != tt.want {
				t.Fatalf("= %s, %v; want %s", b, err, tt.want)
			}
		})
	}
	t.Run("response", func(t *testing.T) {
		r, err := decodeAstridHTTPResponse([]byte(`{"status":404,"headers":{"content-type":"text/plain"},"body":"gone"}`))
		if err != nil || r.Status != 404 || r.Headers["content-type"] != "text/plain" || string(r.Body) != "gone" {
			t.Fatalf("= %+v, %v", r, err)
		}
		if _, err := decodeAstridHTTPResponse([]byte(`x`)); err == nil {
			t.Fatal("bad response accepted")
		}
	})
	t.Run("stream start", func(t *testing.T) {
		s, err := decodeStreamStart([]byte(`{"handle":"1","status":200,"headers":{}}`))
		if err != nil || s.handle != "1" || s.Status != 200 {
			t.Fatalf("= %+v, %v", s, err)
		}
		if _, err := decodeStreamStart([]byte(`{"status":200}`)); err == nil || !strings.Contains(err.Error(), "no handle") {
			t.Fatalf("no handle: err = %v", err)
		}
	})
}

func TestCheckLenLimits(t *testing.T) {
	// The SDK refuses what the host would trap on, before calling it: these never reach the
	// kernel (which would panic outside wasip1).
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"KVGet key", func() error { _, err := KVGet(strings.Repeat("k", MaxKVKeyBytes+1)); return err }, "KVGet: key of 4097 bytes is over the host's limit of 4096 bytes"},
		{"KVSet value", func() error { return KVSet("k", make([]byte, MaxKVValueBytes+1)) }, "KVSet: value of 10485761 bytes"},
		{"KVListKeys prefix", func() error { _, err := KVListKeys(strings.Repeat("k", MaxKVKeyBytes+1)); return err }, "KVListKeys: prefix"},
		{"ReadFile path", func() error { _, err := ReadFile(strings.Repeat("p", MaxPathBytes+1)); return err }, "ReadFile: path of 4097 bytes"},
		{"WriteFile content", func() error { return WriteFile("f", make([]byte, MaxFileBytes+1)) }, "WriteFile: content of 10485761 bytes"},
		{"Mkdir path", func() error { return Mkdir(strings.Repeat("p", MaxPathBytes+1)) }, "Mkdir: path"},
		{"AstridLog message", func() error { return AstridLog("info", strings.Repeat("m", MaxLogMessageBytes+1)) }, "AstridLog: message of 65537 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeHostResult(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x00abc", "\x01err", "\x02", "\x00[\"a\"]", "\x003"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeHostResult("f", b)
		var he *HostError
		switch {
		case len(b) == 0 || b[0] > 1:
			if err == nil || errors.As(err, &he) {
				t.Fatalf("%q: err = %v, want a plain error", b, err)
			}
		case b[0] == 0:
			if err != nil || !bytes.Equal(r, b[1:]) {
				t.Fatalf("%q: = %q, %v", b, r, err)
			}
		default:
			if !errors.As(err, &he) || he.Message != string(b[1:]) {
				t.Fatalf("%q: err = %v", b, err)
			}
		}
		// The typed decoders never panic on anything.
		decodeExists(b)
		decodeStat(b)
		decodeNames("f", b)
		decodeCount(b)
	})
}
