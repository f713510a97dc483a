//go:build wasip1

package astrid

import (
	"bytes"
	"testing"
)

// TestMemoryRoundTrip: a block stored and loaded back, through the word-by-word copies (under
// bulkCopyMin, with their overlapping last word) and the bulk ones, at every length around
// them, holds exactly what was stored and nothing beyond. It needs the kernel (a runner that
// provides it; see recv_bench_wasip1_test.go).
func TestMemoryRoundTrip(t *testing.T) {
	for n := range 3 * bulkCopyMin {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(n*31 + i*7 + 1)
		}
		m := AllocateBytes(src)
		if m.Len() != n {
			t.Fatalf("AllocateBytes of %d bytes gave a block of %d", n, m.Len())
		}
		if got := m.Bytes(); !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: stored %x, loaded %x", n, src, got)
		}
		if got := FindMemory(AllocateString(string(src)).Handle()).Bytes(); !bytes.Equal(got, src) {
			t.Fatalf("%d bytes as a string: stored %x, loaded %x", n, src, got)
		}
		// A shorter Load and Store at the block's start leave the rest as it was.
		for k := range n + 1 {
			part := make([]byte, k)
			m.Load(part)
			if !bytes.Equal(part, src[:k]) {
				t.Fatalf("Load of %d of %d bytes: %x, want %x", k, n, part, src[:k])
			}
			m.Store(bytes.Repeat([]byte{0xAA}, k))
			want := append(bytes.Repeat([]byte{0xAA}, k), src[k:]...)
			if got := m.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("after a Store of %d of %d bytes: %x, want %x", k, n, got, want)
			}
			m.Store(src)
		}
		m.Free()
	}
}
