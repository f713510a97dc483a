package astrid

import (
	"errors"
	"io"
)

// The CLI socket (upstream's astrid_net_* functions, astrid-sdk's net module). The host binds one
// unix socket, STATE/run/system.sock, and hands it only to capsules that list something in
// [capabilities] net_bind. Clients of the host's user connect to it and authenticate with the
// session token the host writes next to it; then each side sends frames (a 4-byte big-endian
// length and at most 10 MiB). A capsule holds at most MaxNetStreams connections at once. The
// host refuses by trapping the call: a capsule without net_bind, the stream cap reached on
// Accept, an unknown stream, a frame over 10 MiB.

// Limits of the socket functions.
const (
	// MaxNetStreams is how many connections a capsule may hold at once (upstream's 8).
	MaxNetStreams = 8
	// MaxNetFrameBytes bounds one frame, in either direction: 10 MiB.
	MaxNetFrameBytes = 10 << 20
)

// The status byte that starts every astrid_net_read result.
const (
	netReadData    = 0x00
	netReadClosed  = 0x01
	netReadPending = 0x02
)

// ErrNoMessage is TryRecv's answer when no frame arrived within the host's short wait (50 ms).
var ErrNoMessage = errors.New("astrid: no message available")

// Listener is the host's CLI socket, as a capsule with net_bind accepts from it.
type Listener struct{}

// BindUnix checks the capsule's net_bind grant (astrid_net_bind_unix) and returns the host's
// socket; the host has bound it already, so there is no path to choose. The call traps for a
// capsule without net_bind.
func BindUnix() *Listener {
	m := AllocateString("")
	hostNetBindUnix(m.handle) // a bare 1, not a block
	m.Free()
	return &Listener{}
}

// Accept waits for the next client that passes the host's checks (same user, right token) and
// returns its connection. It traps when the capsule already holds MaxNetStreams connections
// and when the capsule unloads.
func (l *Listener) Accept() *Conn {
	return &Conn{handle: string(callHost(hostNetAccept, nil))}
}

// TryAccept returns a waiting client's connection, or false when none came within the host's
// short wait (10 ms), the capsule holds MaxNetStreams connections, or the client failed the
// checks.
func (l *Listener) TryAccept() (*Conn, bool) {
	h := callHost(hostNetPollAccept, nil)
	if len(h) == 0 {
		return nil, false
	}
	return &Conn{handle: string(h)}, true
}

// Conn is one client connection. Like a Subscription it outlives the call that accepted it,
// until Close or the end of the capsule instance.
type Conn struct {
	handle string
	closed bool
}

// Handle is the connection's handle in the host (a decimal number from 1), for logs.
func (c *Conn) Handle() string { return c.handle }

// errConnClosed is the error of a use of a closed Conn.
var errConnClosed = errors.New("astrid: Conn: use after Close")

// TryRecv returns the next frame: ErrNoMessage when none came within the host's short wait,
// io.EOF once the client has gone. A frame is at most MaxNetFrameBytes (a larger length traps).
func (c *Conn) TryRecv() ([]byte, error) {
	if c.closed {
		return nil, errConnClosed
	}
	b := callHost(hostNetRead, []byte(c.handle))
	if len(b) == 0 {
		return nil, io.EOF
	}
	switch b[0] {
	case netReadData:
		return b[1:], nil
	case netReadPending:
		return nil, ErrNoMessage
	default:
		return nil, io.EOF
	}
}

// Recv waits for the next frame, io.EOF once the client has gone. Each wait in the host is
// short, so Recv is a loop of TryRecv; it also ends (ErrNoMessage) when the capsule unloads,
// whose pending reads answer "no message".
func (c *Conn) Recv() ([]byte, error) {
	for {
		b, err := c.TryRecv()
		if !errors.Is(err, ErrNoMessage) {
			return b, err
		}
	}
}

// Send sends b to the client as one frame. A client that has gone is not an error here (the
// host only logs it; the next TryRecv says io.EOF). Send returns an error, without calling the
// host, for a frame over MaxNetFrameBytes.
func (c *Conn) Send(b []byte) error {
	if c.closed {
		return errConnClosed
	}
	if err := checkLen("Conn.Send", "frame", len(b), MaxNetFrameBytes); err != nil {
		return err
	}
	h := AllocateString(c.handle)
	d := AllocateBytes(b)
	hostNetWrite(h.handle, d.handle)
	h.Free()
	d.Free()
	return nil
}

// Close closes the connection (the host publishes client.v1.disconnect). Closing it again does
// nothing.
func (c *Conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	h := AllocateString(c.handle)
	hostNetCloseStream(h.handle)
	h.Free()
	return nil
}
