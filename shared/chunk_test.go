package shared

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestChunksRoundTrip: what SendChunks sends in pieces of at most ChunkBytes, RecvChunks joins
// back, up to its limit exactly; one byte more is refused without reading further.
func TestChunksRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		limit  int
		pieces int
		ok     bool
	}{
		{"empty", 0, 10, 0, true},
		{"one byte", 1, 10, 1, true},
		{"one chunk", ChunkBytes, ChunkBytes, 1, true},
		{"a chunk and a byte", ChunkBytes + 1, 2 * ChunkBytes, 2, true},
		{"three chunks at the limit", 3 * ChunkBytes, 3 * ChunkBytes, 3, true},
		{"one byte past the limit", 3*ChunkBytes + 1, 3 * ChunkBytes, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{7}, tc.size)
			var sent []*pb.Chunk
			if err := SendChunks(func(c *pb.Chunk) error { sent = append(sent, c); return nil }, data); err != nil {
				t.Fatal(err)
			}
			if len(sent) != tc.pieces {
				t.Fatalf("%d pieces, want %d", len(sent), tc.pieces)
			}
			read := 0
			recv := func() (*pb.Chunk, error) {
				if read == len(sent) {
					return nil, io.EOF
				}
				read++
				return sent[read-1], nil
			}
			got, err := RecvChunks(recv, tc.limit)
			switch {
			case tc.ok && (err != nil || !bytes.Equal(got, data)):
				t.Fatalf("received %d bytes, %v; want %d", len(got), err, len(data))
			case !tc.ok && (!errors.Is(err, ErrTooLarge) || read != len(sent)):
				t.Fatalf("past the limit: %v after %d of %d pieces", err, read, len(sent))
			}
		})
	}
}

func TestChunksErrors(t *testing.T) {
	boom := errors.New("boom")
	if err := SendChunks(func(*pb.Chunk) error { return boom }, []byte("x")); err != boom {
		t.Errorf("SendChunks: %v", err)
	}
	if _, err := RecvChunks(func() (*pb.Chunk, error) { return nil, boom }, 10); err != boom {
		t.Errorf("RecvChunks: %v", err)
	}
}
