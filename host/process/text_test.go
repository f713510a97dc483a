package process

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestJSONRuneLen checks the escaping rule against the encoder the results go through, for every
// rune: the bound on a spawn result is only as good as this agreement.
func TestJSONRuneLen(t *testing.T) {
	t.Parallel()
	// In blocks of 256 runes (one encoding each), and rune by rune in a block that disagrees.
	check := func(runes []rune) bool {
		want := 0
		for _, r := range runes {
			want += jsonRuneLen(r)
		}
		enc, err := encode(string(runes))
		if err != nil {
			t.Fatal(err)
		}
		return len(enc)-2 == want
	}
	var block []rune
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if utf8.ValidRune(r) { // not the surrogates, which lossy decoding never produces
			block = append(block, r)
		}
		if len(block) < 256 && r < utf8.MaxRune {
			continue
		}
		if !check(block) {
			for _, r := range block {
				if !check([]rune{r}) {
					enc, _ := encode(string(r))
					t.Fatalf("jsonRuneLen(%U) = %d, the encoder writes %s", r, jsonRuneLen(r), enc)
				}
			}
		}
		block = block[:0]
	}
}

// TestLossyPrefix: the longest lossy-decoded prefix that fits the budget as JSON, decoded as
// lossyString decodes the whole.
func TestLossyPrefix(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		in     string
		budget int
		want   string
		cut    bool
	}{
		{"fits", "hello", 5, "hello", false},
		{"one over", "hello!", 5, "hello", true},
		{"empty", "", 0, "", false},
		{"NULs take six each", "\x00\x00\x00", 12, "\x00\x00", true},
		{"newline takes two", "a\nb", 3, "a\n", true},
		{"a quote is never split", `ab"`, 3, "ab", true},
		{"invalid byte takes three", "a\xffb", 4, "a\uFFFD", true},
		{"maximal invalid sequence is one U+FFFD", "\xe2\x82A", 4, "\uFFFDA", false},
		{"a rune is never split", "aé", 2, "a", true},
		{"U+2028 takes six", "\u2028x", 6, "\u2028", true},
		{"DEL is plain", "\x7f", 1, "\x7f", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, cut := lossyPrefix([]byte(tt.in), tt.budget)
			if got != tt.want || cut != tt.cut {
				t.Fatalf("lossyPrefix(%q, %d) = %q, %v; want %q, %v", tt.in, tt.budget, got, cut, tt.want, tt.cut)
			}
			enc, _ := encode(got)
			if len(enc)-2 > tt.budget {
				t.Fatalf("the prefix takes %d bytes as JSON, more than the budget %d", len(enc)-2, tt.budget)
			}
			if !cut && got != lossyString([]byte(tt.in)) {
				t.Fatalf("uncut prefix %q differs from lossyString %q", got, lossyString([]byte(tt.in)))
			}
		})
	}
	// Whatever the bytes, the prefix is a prefix of the whole decoding.
	mixed := []byte(strings.Repeat("a\x00\xff\"é\n\u2028\xe2\x82", 50))
	whole := lossyString(mixed)
	for budget := 0; budget < 200; budget++ {
		got, _ := lossyPrefix(mixed, budget)
		if !strings.HasPrefix(whole, got) {
			t.Fatalf("budget %d: %q is not a prefix of the whole decoding", budget, got)
		}
	}
}
