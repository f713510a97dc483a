// Package logtext makes bytes a capsule chose safe to show: in a log line, on a terminal, in an
// error message.
//
// A guest's log lines, its stdout and stderr, its error messages and trap messages, and anything a
// shim a guest may have escaped into writes on its stderr reach the host's log and the user's
// terminal. Unescaped, a newline forges a line of the host's own ("\n[ERROR] astrid-host: ..."),
// and terminal control sequences colour, move the cursor, rewrite the window title or hide text.
// Every such path passes the bytes through Escape (or EscapeBlock for a multi-line block such as
// a crash report) first; the shim does it where the bytes leave the guest, and the host again
// where they enter its log, because the host cannot trust the shim to have done it.
//
// What is escaped: every byte of invalid UTF-8 (as \xNN), every C0 control and DEL (\n, \r, \t
// in a single line, else \xNN), every C1 control, and every other rune that is not printable,
// such as the bidirectional overrides that reorder what a terminal shows and the line and
// paragraph separators (as \uNNNN). Everything else, backslashes included, is left as it is: the
// output contains no byte a terminal acts on, and escaping it again changes nothing (Escape is
// idempotent), so the shim and the host can both apply it. The price is that a guest that writes
// the six characters `\x1b` looks like one that wrote the escape byte; neither reaches the
// terminal as a control.
package logtext

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// Escape returns s as one line that is safe to write to a log or a terminal (see the package
// documentation): line breaks become \n and \r, other controls and invalid UTF-8 \xNN, other
// non-printable runes \uNNNN. Tabs are kept. A string that needs nothing is returned unchanged,
// without allocating.
func Escape(s string) string {
	return escape(s, false)
}

// EscapeBlock is Escape for a block of lines, such as a guest's stderr or a backtrace: each line
// is escaped, and the newlines between lines are kept (a \r before a newline is dropped). Shown
// indented under a log line, no line of it can pass for one of the host's.
func EscapeBlock(s string) string {
	return escape(s, true)
}

func escape(s string, keepNewlines bool) string {
	if safe(s, keepNewlines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n' && keepNewlines:
				b.WriteByte('\n')
			case c == '\r' && keepNewlines && i+1 < len(s) && s[i+1] == '\n':
				// a CRLF line end: the line break is kept, the carriage return dropped
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t' || c >= 0x20 && c < 0x7f:
				b.WriteByte(c)
			default:
				writeHexByte(&b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeHexByte(&b, c)
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			writeRune(&b, r)
		}
		i += n
	}
	return b.String()
}

// safe reports whether s needs no escaping: printable ASCII and tabs (and newlines in a block)
// only, the common case, checked without decoding runes.
func safe(s string, keepNewlines bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' && keepNewlines {
			continue
		}
		return false
	}
	return true
}

func writeHexByte(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&0xf])
}

func writeRune(b *strings.Builder, r rune) {
	if r > 0xffff {
		b.WriteString(`\U`)
		for shift := 28; shift >= 0; shift -= 4 {
			b.WriteByte(hexDigits[(r>>uint(shift))&0xf])
		}
		return
	}
	b.WriteString(`\u`)
	for shift := 12; shift >= 0; shift -= 4 {
		b.WriteByte(hexDigits[(r>>uint(shift))&0xf])
	}
}

// Lines escapes each of lines with Escape and joins them with newlines into one block.
func Lines(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(Escape(l))
	}
	return b.String()
}

// EscapeJSON returns the JSON text b with every rune that is not printable written as a \u escape
// (a pair of them outside the Basic Multilingual Plane), so that it is as safe on a terminal as
// Escape's output and still means the same JSON. encoding/json already escapes the C0 controls,
// but not C1 controls or the bidirectional overrides. b must be valid JSON, such as
// json.Marshal's output (which is valid UTF-8).
func EscapeJSON(b []byte) []byte {
	if safe(string(b), false) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r < utf8.RuneSelf || unicode.IsPrint(r) || r == utf8.RuneError && n == 1 {
			out = append(out, b[i:i+n]...)
			i += n
			continue
		}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			out = appendU(appendU(out, r1), r2)
		} else {
			out = appendU(out, r)
		}
		i += n
	}
	return out
}

func appendU(out []byte, r rune) []byte {
	out = append(out, '\\', 'u')
	for shift := 12; shift >= 0; shift -= 4 {
		out = append(out, hexDigits[(r>>uint(shift))&0xf])
	}
	return out
}
