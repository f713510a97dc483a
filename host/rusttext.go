package host

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Rust's ways of turning bytes into text, which upstream's refusals quote.

// utf8Seq is what Rust's UTF-8 validation expects of a sequence starting with first: its width
// (0 for a byte no sequence starts with) and the range of its second byte.
func utf8Seq(first byte) (width int, lo, hi byte) {
	lo, hi = 0x80, 0xbf
	switch {
	case first >= 0xc2 && first <= 0xdf:
		width = 2
	case first == 0xe0:
		width, lo = 3, 0xa0
	case first >= 0xe1 && first <= 0xec, first == 0xee, first == 0xef:
		width = 3
	case first == 0xed:
		width, hi = 3, 0x9f
	case first == 0xf0:
		width, lo = 4, 0x90
	case first >= 0xf1 && first <= 0xf3:
		width = 4
	case first == 0xf4:
		width, hi = 4, 0x8f
	}
	return width, lo, hi
}

// utf8ValidPart is how many bytes of b, which starts an invalid sequence, are a valid prefix of
// one (at least 1), and whether b ends inside it.
func utf8ValidPart(b []byte) (n int, cut bool) {
	width, lo, hi := utf8Seq(b[0])
	for n = 1; n < width; n++ {
		if n >= len(b) {
			return n, true
		}
		c := b[n]
		if n == 1 && (c < lo || c > hi) || n > 1 && (c < 0x80 || c > 0xbf) {
			break
		}
	}
	return n, false
}

// rustLossy is String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
func rustLossy(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			sb.WriteRune(utf8.RuneError)
			n, _ := utf8ValidPart(b)
			b = b[n:]
			continue
		}
		sb.Write(b[:size])
		b = b[size:]
	}
	return sb.String()
}

// rustDebugString is a string as Rust's {:?} writes it: in double quotes, with \0 \t \r \n \\
// \" escaped, and characters that are not printable, or that extend a grapheme, as \u{hex}.
func rustDebugString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == 0:
			sb.WriteString(`\0`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\\' || r == '"':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case !unicode.IsPrint(r) && r != ' ' || unicode.In(r, unicode.Mn, unicode.Me):
			fmt.Fprintf(&sb, `\u{%x}`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}
