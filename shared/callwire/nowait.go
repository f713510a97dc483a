package callwire

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// WriteBytesFieldFrameNoWait is WriteBytesFieldFrame for a goroutine that must not wait on this
// connection's other end (the host's reader of another shim, answering this shim's recv with what
// it has just published): it makes at most one attempt to write without blocking. What the
// pipe cannot take at once (the other end is not reading), or the whole frame when another
// goroutine is writing now, is written by a goroutine of its own, which holds the write lock
// until the frame is out, so frames stay whole and in order. done is called once with the
// write's result, once the connection no longer refers to value.
func (c *Conn) WriteBytesFieldFrameNoWait(kind Kind, id uint64, field protowire.Number, value []byte, done func(error)) {
	if !c.wmu.TryLock() {
		go func() { done(c.WriteBytesFieldFrame(kind, id, field, value)) }()
		return
	}
	head, value, err := c.bytesFieldHead(kind, id, field, value)
	if err != nil {
		c.wmu.Unlock()
		done(err)
		return
	}
	bufs := c.bufs[:0]
	if len(c.deferred) > 0 {
		bufs = append(bufs, c.deferred)
	}
	bufs = append(bufs, head)
	if value != nil {
		bufs = append(bufs, value)
	}
	rest, err := c.writeNow(bufs)
	if err != nil || len(rest) == 0 {
		c.wroteLocked(bufs, head)
		c.wmu.Unlock()
		if err != nil {
			err = fmt.Errorf("send a %s frame: %w", kind, err)
		}
		done(err)
		return
	}
	go func() {
		err := c.w.writeAll(rest)
		c.wroteLocked(bufs, head)
		c.wmu.Unlock()
		if err != nil {
			err = fmt.Errorf("send a %s frame: %w", kind, err)
		}
		done(err)
	}()
}

// WriteEmptyFrameNoWait is WriteBytesFieldFrameNoWait for a frame without a body (a Ping).
func (c *Conn) WriteEmptyFrameNoWait(kind Kind, id uint64, done func(error)) {
	c.WriteBytesFieldFrameNoWait(kind, id, 0, nil, done) // (an empty value writes no field)
}

// writeNow writes bufs without blocking, as far as the pipe takes them, and returns what is
// left (a suffix of bufs, its first buffer cut where the write stopped). Called with wmu held.
func (c *Conn) writeNow(bufs [][]byte) (rest [][]byte, err error) {
	rest = bufs
	cerr := c.raw.Write(func(fd uintptr) bool {
		for len(rest) > 0 {
			n, werr := rawWritev(fd, rest) // (see rawio.go)
			if errors.Is(werr, unix.EINTR) {
				continue
			}
			if errors.Is(werr, unix.EAGAIN) {
				return true // full: the rest goes out on a goroutine of its own
			}
			if werr != nil {
				err = werr
				return true
			}
			rest = consume(rest, n)
		}
		return true
	})
	if err == nil && cerr != nil {
		err = waitError(cerr)
	}
	return rest, err
}

// wroteLocked resets the write state after a write of bufs (whose head buffer is kept for the
// next frame); called with wmu held.
func (c *Conn) wroteLocked(bufs [][]byte, head []byte) {
	clear(bufs)
	c.bufs = bufs[:0]
	c.deferred = c.deferred[:0]
	c.wbuf = head
}
