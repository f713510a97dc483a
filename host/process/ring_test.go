package process

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestRing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, ""},
		{"fits", []string{"abc", "def"}, "abcdef"},
		{"exactly full", []string{"abcd", "efgh"}, "abcdefgh"},
		{"drops the oldest", []string{"abc", "defgh", "ij"}, "cdefghij"},
		{"one big write keeps its end", []string{"ab", "0123456789xyz"}, "56789xyz"},
		{"a write of the limit replaces all", []string{"abc", "12345678"}, "12345678"},
		{"wraps many times", []string{"abcde", "fghij", "klmno", "pqrst", "u"}, "nopqrstu"},
		{"empty writes", []string{"", "ab", ""}, "ab"},
	}
	for _, tt := range tests {
		r := newRing(8)
		written := 0
		for _, w := range tt.writes {
			if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tt.name, n, err)
			}
			written += len(w)
		}
		if r.dropped != uint64(written-len(tt.want)) {
			t.Errorf("%s: dropped %d, want %d", tt.name, r.dropped, written-len(tt.want))
		}
		if got := string(r.drain(false)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if got := r.drain(false); len(got) != 0 {
			t.Errorf("%s: a second drain gave %q", tt.name, got)
		}
	}
}

// TestRingModel compares the ring with the obvious implementation over random writes and
// drains.
func TestRingModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 7, 4096, 10000} {
		r := newRing(limit)
		var model []byte
		for step := range 2000 {
			if rng.IntN(10) == 0 {
				got := r.drain(false)
				if !bytes.Equal(got, model) {
					t.Fatalf("limit %d step %d: drained %d bytes, want %d", limit, step, len(got), len(model))
				}
				model = nil
				continue
			}
			p := make([]byte, rng.IntN(3*limit/2+2))
			for i := range p {
				p[i] = byte(rng.IntN(256))
			}
			r.Write(p)
			model = append(model, p...)
			if len(model) > limit {
				model = model[len(model)-limit:]
			}
		}
	}
}

// TestRingHoldsPartialRune: a drain of a running process keeps an incomplete UTF-8 sequence
// for the next drain.
func TestRingHoldsPartialRune(t *testing.T) {
	t.Parallel()
	r := newRing(64)
	r.Write([]byte("h\xc3"))
	if got := string(r.drain(true)); got != "h" {
		t.Fatalf("first drain %q, want %q", got, "h")
	}
	r.Write([]byte("\xa9 \xe2\x82"))
	if got := string(r.drain(true)); got != "é " {
		t.Fatalf("second drain %q, want %q", got, "é ")
	}
	if got := string(r.drain(false)); got != "\xe2\x82" {
		t.Fatalf("final drain %q, want the held bytes", got)
	}
	for _, tt := range []struct {
		in   string
		hold int
	}{
		{"", 0}, {"abc", 0}, {"é", 0}, {"a\xc3", 1}, {"a\xe2\x82", 2}, {"\xf0\x9f\x98", 3},
		{"\xf0\x9f\x98\x80", 0}, {"a\x82", 0}, {"a\xff", 0}, {"\xe2\x41", 0}, {"\xed\xa0", 0},
	} {
		if got := partialRuneSuffix([]byte(tt.in)); got != tt.hold {
			t.Errorf("partialRuneSuffix(%q) = %d, want %d", tt.in, got, tt.hold)
		}
	}
}

func TestCapture(t *testing.T) {
	t.Parallel()
	c := &capture{limit: 5}
	for _, w := range []string{"ab", "cd"} {
		c.Write([]byte(w))
	}
	if string(c.buf) != "abcd" || c.truncated {
		t.Fatalf("%q truncated %v", c.buf, c.truncated)
	}
	c.Write([]byte("e"))
	if string(c.buf) != "abcde" || c.truncated {
		t.Fatalf("exactly the limit: %q truncated %v", c.buf, c.truncated)
	}
	if n, _ := c.Write([]byte("fg")); n != 2 || string(c.buf) != "abcde" || !c.truncated {
		t.Fatalf("past the limit: n %d %q truncated %v", n, c.buf, c.truncated)
	}
	// Control characters count as they are escaped; other bytes at least one each.
	nul := &capture{limit: 13}
	nul.Write([]byte("\x00\x00a\x00"))
	if string(nul.buf) != "\x00\x00a" || !nul.truncated {
		t.Fatalf("NULs: %q truncated %v", nul.buf, nul.truncated)
	}
	multi := &capture{limit: 3}
	multi.Write([]byte("é\xff\xfe"))
	if string(multi.buf) != "é\xff" || !multi.truncated {
		t.Fatalf("non-ASCII: %q truncated %v", multi.buf, multi.truncated)
	}
}

func TestLossyString(t *testing.T) {
	t.Parallel()
	// Expectations follow Rust's String::from_utf8_lossy (one U+FFFD per maximal invalid
	// subsequence), which upstream's results use.
	for _, tt := range []struct{ in, want string }{
		{"plain", "plain"},
		{"é✓😀", "é✓😀"},
		{"a\xffb", "a\uFFFDb"},
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"\xe2\x82A", "\uFFFDA"},
		{"\xf0\x9f\x98A", "\uFFFDA"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\x80abc", "\uFFFDabc"},
		{"\uFFFD", "\uFFFD"},
		{"", ""},
	} {
		if got := lossyString([]byte(tt.in)); got != tt.want {
			t.Errorf("lossyString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
