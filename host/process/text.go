package process

import (
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
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size != 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		invalid := 1
		for n := 2; n < utf8.UTFMax && i+n <= len(b) && !utf8.FullRune(b[i:i+n]); n++ {
			invalid = n
		}
		sb.WriteRune(utf8.RuneError)
		i += invalid
	}
	return sb.String()
}
