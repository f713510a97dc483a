package shared

import (
	"errors"
	"fmt"
	"io"

	"github.com/astrid-go/astrid/shared/pb"
)

// ErrTooLarge is wrapped by RecvChunks' error when the stream goes past its limit.
var ErrTooLarge = errors.New("stream too large")

// SendChunks sends data through send in pieces of at most ChunkBytes, in order: the one way
// modules and artefacts are streamed by Compile, on both sides.
func SendChunks(send func(*pb.Chunk) error, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), ChunkBytes)
		if err := send(&pb.Chunk{Data: data[:n]}); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// RecvChunks receives pieces through recv until io.EOF and returns them joined. A stream of more
// than limit bytes is refused as soon as it goes past the limit, with an error wrapping
// ErrTooLarge; any other error of recv is returned as it is.
func RecvChunks(recv func() (*pb.Chunk, error), limit int) ([]byte, error) {
	var out []byte
	for {
		c, err := recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(c.Data) > limit-len(out) {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		out = append(out, c.Data...)
	}
}
