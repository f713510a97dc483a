package process

import (
	"math"
	"strings"
	"unicode/utf8"
)

// lossyString decodes b as UTF-8 the way Rust's String::from_utf8_lossy does (upstream's
// output strings): each maximal invalid subsequence — the longest prefix of a sequence that
// could still have been valid, or a single byte — becomes one U+FFFD.
func lossyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	s, _ := lossyPrefix(b, math.MaxInt)
	return s
}

// lossyPrefix decodes b as lossyString does and keeps the longest prefix of the text whose JSON
// string form (as the results are encoded: see encode) takes at most budget bytes between its
// quotes. cut reports whether any of b was dropped. A byte takes one to six bytes in JSON (a
// control character becomes \u00XX), so bounding the raw bytes does not bound the result.
func lossyPrefix(b []byte, budget int) (s string, cut bool) {
	var sb strings.Builder
	sb.Grow(min(len(b), budget) + 16)
	used, kept := 0, 0 // b[kept:i] is valid text not yet written
	for i := 0; i < len(b); {
		var r rune
		size := 1
		if c := b[i]; c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, size = utf8.DecodeRune(b[i:])
		}
		invalid := r == utf8.RuneError && size == 1
		if invalid {
			for n := 2; n < utf8.UTFMax && i+n <= len(b) && !utf8.FullRune(b[i:i+n]); n++ {
				size = n // the longest prefix of a sequence that could still have been valid
			}
		}
		if used += jsonRuneLen(r); used > budget {
			sb.Write(b[kept:i])
			return sb.String(), true
		}
		if invalid {
			sb.Write(b[kept:i])
			sb.WriteRune(utf8.RuneError)
			kept = i + size
		}
		i += size
	}
	sb.Write(b[kept:])
	return sb.String(), false
}

// jsonRuneLen is how many bytes r takes inside a JSON string as encoding/json writes it with
// HTML escaping off (encode): two for '"', '\\' and the control characters with a short escape,
// six for the other control characters and U+2028/U+2029, else its UTF-8 length.
func jsonRuneLen(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '\u2028' || r == '\u2029':
		return 6
	}
	return utf8.RuneLen(r)
}
