package callwire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// TestSysWriteWholeWhenFull: a write larger than the socket takes at once, spread over more
// buffers than one writev carries, arrives whole and in order (the writer waits in the netpoller
// while the socket is full), read back through the raw reader in pieces.
func TestSysWriteWholeWhenFull(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
	}{
		{"one small buffer", []int{10}},
		{"empty buffers among others", []int{0, 5, 0, 7, 0}},
		{"more buffers than one writev takes", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"larger than the socket's buffer", []int{3 << 20, 1, 2 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t)
			var bufs [][]byte
			var want []byte
			for i, n := range tc.sizes {
				p := bytes.Repeat([]byte{byte('a' + i)}, n)
				bufs = append(bufs, p)
				want = append(want, p...)
			}
			errc := make(chan error, 1)
			go func() { errc <- a.w.writeAll(bufs) }()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(b.r, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, not what was written", len(got))
			}
		})
	}
}

// TestSysReaderEnds: the raw reader reports the other end's close as io.EOF and its own close as
// net.ErrClosed, as net.Conn's Read did (the callers' checks depend on them).
func TestSysReaderEnds(t *testing.T) {
	a, b := pair(t)
	a.Close()
	if _, err := b.r.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the other end closed: %v, want io.EOF", err)
	}
	c, d := pair(t)
	_ = d
	c.Close()
	if _, err := c.r.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after its own close: %v, want net.ErrClosed", err)
	}
}

func TestConsume(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want []string
	}{
		{"nothing", 0, []string{"ab", "cd"}},
		{"part of the first", 1, []string{"b", "cd"}},
		{"the first", 2, []string{"cd"}},
		{"into the second", 3, []string{"d"}},
		{"all", 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := consume([][]byte{[]byte("ab"), []byte("cd")}, tc.n)
			if len(got) != len(tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Fatalf("%q, want %q", got, tc.want)
				}
			}
		})
	}
}
