package process

import (
	"sync"
	"unicode/utf8"
)

// ring is a drop-oldest byte buffer: it holds the newest limit bytes written to it. A background
// process's reader writes into it while read_logs and kill drain it, so it has its own lock.
//
// The buffer grows on demand up to limit, so a quiet process costs nothing, and is released by
// a drain that empties it.
type ring struct {
	mu      sync.Mutex
	limit   int
	buf     []byte // len(buf) < limit: the data is buf[:size] (start is 0); else circular
	start   int    // index of the oldest byte
	size    int    // bytes held
	dropped uint64 // bytes discarded to make room, over the ring's life
}

func newRing(limit int) *ring { return &ring{limit: limit} }

// Write appends p, discarding the oldest bytes beyond the limit. It never fails.
func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	if n >= r.limit {
		r.dropped += uint64(r.size + n - r.limit)
		if len(r.buf) < r.limit {
			r.buf = make([]byte, r.limit)
		}
		copy(r.buf, p[n-r.limit:])
		r.start, r.size = 0, r.limit
		return n, nil
	}
	need := r.size + n
	if need > len(r.buf) && len(r.buf) < r.limit {
		grown := make([]byte, min(r.limit, max(need, 2*len(r.buf), 4096)))
		copy(grown, r.buf[:r.size]) // not yet circular: the data starts at 0
		r.buf = grown
	}
	if need > r.limit {
		drop := need - r.limit
		r.start = (r.start + drop) % r.limit
		r.size -= drop
		r.dropped += uint64(drop)
	}
	end := (r.start + r.size) % len(r.buf)
	copied := copy(r.buf[end:], p)
	copy(r.buf, p[copied:])
	r.size += n
	return n, nil
}

// drain returns the bytes held, oldest first, and empties the ring. With holdPartial, an
// incomplete UTF-8 sequence at the end stays in the ring: its remaining bytes are probably on
// their way, and decoding it now would turn one character into replacement characters.
func (r *ring) drain(holdPartial bool) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]byte, r.size)
	if r.size > 0 {
		n := copy(out, r.buf[r.start:min(r.start+r.size, len(r.buf))])
		copy(out[n:], r.buf[:r.size-n])
	}
	r.buf, r.start, r.size = nil, 0, 0
	if holdPartial {
		if k := partialRuneSuffix(out); k > 0 {
			r.buf = append([]byte(nil), out[len(out)-k:]...)
			r.size = k
			out = out[:len(out)-k]
		}
	}
	return out
}

// partialRuneSuffix returns the length of the incomplete but so far valid UTF-8 sequence that
// ends b, or 0.
func partialRuneSuffix(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(b[len(b)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

// capture keeps the start of what is written to it, as much as may take up to limit bytes in a
// JSON string, and notes that it dropped the rest: a synchronous spawn's output. It counts a
// lower bound of the JSON size as it goes (an ASCII byte's exact cost, one for any other byte:
// a multi-byte rune never takes fewer bytes than it has, an invalid sequence becomes the three
// of U+FFFD), so it stops keeping output that can no longer fit (six times sooner for NULs)
// and lossyPrefix then cuts exactly. Its reader writes it and the spawn reads it only after
// the reader has ended, so it needs no lock.
type capture struct {
	limit     int
	buf       []byte
	cost      int // the lower bound of buf's JSON size
	truncated bool
}

// Write keeps what may fit and drops the rest; it never fails, so the child is drained to EOF.
func (c *capture) Write(p []byte) (int, error) {
	if c.truncated {
		return len(p), nil
	}
	for i, b := range p {
		cost := 1
		if b < utf8.RuneSelf {
			cost = jsonRuneLen(rune(b))
		}
		if c.cost+cost > c.limit {
			c.truncated = true
			c.buf = append(c.buf, p[:i]...)
			return len(p), nil
		}
		c.cost += cost
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
