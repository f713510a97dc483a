package logtext

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want, wantBlock string
	}{
		{"plain", "hello world", "hello world", "hello world"},
		{"tab kept", "a\tb", "a\tb", "a\tb"},
		{"forged line", "ok\n[ERROR] forged\x1b[31m", `ok\n[ERROR] forged\x1b[31m`, "ok\n[ERROR] forged\\x1b[31m"},
		{"carriage return", "a\rb", `a\rb`, `a\rb`},
		{"CRLF", "a\r\nb", `a\r\nb`, "a\nb"},
		{"NUL and DEL", "\x00\x7f", `\x00\x7f`, `\x00\x7f`},
		{"C1 CSI", "x\u009b31m", `x\u009b31m`, `x\u009b31m`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`, `abc\u202edcba`},
		{"line separator", "a\u2028b", `a\u2028b`, `a\u2028b`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`, `a\xffb\xc3`},
		{"printable unicode", "héllo, 世界 🙂", "héllo, 世界 🙂", "héllo, 世界 🙂"},
		{"backslash left alone", `C:\dir\x1b`, `C:\dir\x1b`, `C:\dir\x1b`},
		{"plane 14 tag", "a\U000E0041", `a\U000e0041`, `a\U000e0041`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.in); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := EscapeBlock(tc.in); got != tc.wantBlock {
				t.Errorf("EscapeBlock(%q) = %q, want %q", tc.in, got, tc.wantBlock)
			}
		})
	}
}

func TestLines(t *testing.T) {
	if got, want := Lines([]string{"panic: boom", "\x1b[2J", "a\nb"}), "panic: boom\n\\x1b[2J\na\\nb"; got != want {
		t.Fatalf("Lines = %q, want %q", got, want)
	}
}

func TestEscapeJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"plain"}`, `{"a":"plain"}`},
		{"{\"a\":\"x\u009b2J\u202ey\"}", `{"a":"x\u009b2J\u202ey"}`},
		{"{\"a\":\"\U000E0041 é\"}", `{"a":"\udb40\udc41 é"}`},
	}
	for _, tc := range tests {
		got := string(EscapeJSON([]byte(tc.in)))
		if got != tc.want {
			t.Errorf("EscapeJSON(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var a, b any
		if err := json.Unmarshal([]byte(tc.in), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got), &b); err != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("EscapeJSON(%q) = %q means %v, want %v (%v)", tc.in, got, b, a, err)
		}
	}
}

// FuzzEscape: whatever the input, the output has no control byte (only \n between lines in a
// block), is valid UTF-8, and escaping it again changes nothing.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "ok", "a\nb", "\x1b[31m", "\xff", "\u202e", "a\r\nb", "\\x1b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, block := range []bool{false, true} {
			out := escape(s, block)
			if !utf8.ValidString(out) {
				t.Fatalf("escape(%q, %v) = %q is not valid UTF-8", s, block, out)
			}
			for _, r := range out {
				if r == '\n' && block || r == '\t' {
					continue
				}
				if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || strings.ContainsRune("\u2028\u2029\u202e\u2066", r) {
					t.Fatalf("escape(%q, %v) = %q still holds %U", s, block, out, r)
				}
			}
			if again := escape(out, block); again != out {
				t.Fatalf("escape is not idempotent on %q: %q then %q", s, out, again)
			}
		}
	})
}
