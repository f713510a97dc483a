package syssock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrameBytes bounds a frame on the socket, in either direction: 10 MiB, as upstream's
// astrid_net_read and astrid_net_write.
const MaxFrameBytes = 10 << 20

// ErrFrameTooLarge is returned by ReadFrame for a frame whose length prefix is over its limit;
// nothing of the frame's body has been read.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame writes b as one frame: its length as 4 bytes big-endian, then b. It is one write,
// so frames written by concurrent writers never interleave.
func WriteFrame(w io.Writer, b []byte) error {
	if len(b) > MaxFrameBytes {
		return fmt.Errorf("write a frame of %d bytes: %w (the limit is %d bytes)", len(b), ErrFrameTooLarge, MaxFrameBytes)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame of at most limit bytes. The length prefix is checked before any of
// the body is read or allocated; a frame over limit gives an error wrapping ErrFrameTooLarge.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("a frame of %d bytes: %w (the limit is %d bytes)", n, ErrFrameTooLarge, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}
