package host

import (
	"errors"
	"testing"
)

func TestRustUUIDError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"not-a-uuid", "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 1"},
		{"abc", "invalid length: expected length 32 for simple format, found 3"},
		{"0000-0000", "invalid group count: expected 5, found 2"},
		{"000000000-000-0000-0000-000000000000", "invalid group length in group 0: expected 8, found 9"},
		{"{zz}", "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `z` at 2"},
		{"00000000-0000-0000-0000-00000000000é", "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `é` at 36"},
	} {
		if got := rustUUIDError(tc.in); got != tc.want {
			t.Errorf("rustUUIDError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRustText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"chat", `"chat"`},
		{"a\"b\\c\n\t\r\x00", `"a\"b\\c\n\t\r\0"`},
		{"\x1b[2J", `"\u{1b}[2J"`},
		{"e\u0301", `"e\u{301}"`},
	} {
		if got := rustDebugString(tc.in); got != tc.want {
			t.Errorf("rustDebugString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"ok", "ok"},
		{"a\xffb", "a\uFFFDb"},
		{"a\xe2\x82b", "a\uFFFDb"}, // one replacement for a cut 3-byte sequence, as Rust
		{"\xff\xfe", "\uFFFD\uFFFD"},
	} {
		if got := rustLossy([]byte(tc.in)); got != tc.want {
			t.Errorf("rustLossy(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseNetHandle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{"1", 1, ""},
		{"+7", 7, ""},
		{"+", 0, "Invalid stream handle"},
		{"", 0, "Invalid stream handle"},
		{"-1", 0, "Invalid stream handle"},
		{"18446744073709551616", 0, "Invalid stream handle"},
		{"\xff", 0, "invalid utf-8 sequence of 1 bytes from index 0"},
	} {
		h, err := parseNetHandle([]byte(tc.in))
		var gf *guestFailure
		if tc.err == "" && (err != nil || h != tc.want) || tc.err != "" && (!errors.As(err, &gf) || gf.msg != tc.err) {
			t.Errorf("parseNetHandle(%q) = %d, %v; want %d, %q", tc.in, h, err, tc.want, tc.err)
		}
	}
}
