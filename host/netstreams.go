package host

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/syssock"
	"github.com/astrid-go/astrid/shared"
)

// The streams of the CLI socket an instance has accepted (astrid_net_*), as upstream's
// HostState.active_streams: at most MaxNetStreams at once, numbered from 1 per instance and
// never reused, closed when the instance stops or crashes, so none outlives it and no other
// capsule can name one.

// MaxNetStreams is how many socket streams one instance may hold at once (upstream's
// MAX_ACTIVE_STREAMS).
const MaxNetStreams = 8

// Timeouts of astrid_net_read, upstream's: the length prefix must come within netPollWait or the
// read answers Pending; the body then has netBodyBaseWait plus 1 ms per KiB.
const (
	netPollWait     = 50 * time.Millisecond
	netBodyBaseWait = 5000 * time.Millisecond
	// netPollAcceptWait is how long astrid_net_poll_accept waits for a connection.
	netPollAcceptWait = 10 * time.Millisecond
)

// The status byte that starts every astrid_net_read result (upstream's NetReadStatus).
const (
	netReadData    byte = 0x00
	netReadClosed  byte = 0x01
	netReadPending byte = 0x02
)

// instanceNet is an instance's socket streams.
type instanceNet struct {
	mu      sync.Mutex
	streams map[uint64]*netStream
	next    uint64 // the last handle given
	closed  bool
	done    chan struct{} // closed by close: blocked accepts, reads and writes end
}

// netStream is one accepted, authenticated connection. A read and a write may run at once; two
// reads (or two writes) take turns. A frame read in part (the read was interrupted) is kept and
// completed by the next read, so the stream never loses its framing.
type netStream struct {
	conn *net.UnixConn

	readMu  sync.Mutex
	hdr     [4]byte
	hdrN    int
	body    []byte // the frame being read, once its length is known
	bodyN   int
	bodySet bool

	writeMu sync.Mutex
}

// doneChan is the channel closed when the instance's streams are closed.
func (n *instanceNet) doneChan() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		n.done = make(chan struct{})
	}
	return n.done
}

// count is how many streams are open.
func (n *instanceNet) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.streams)
}

// add stores an authenticated connection and returns its handle; over the cap, or once the
// instance's streams are closed, the connection is closed and refused.
func (n *instanceNet) add(conn *net.UnixConn) (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		conn.Close()
		return 0, errNetUnloading
	}
	if len(n.streams) >= MaxNetStreams {
		conn.Close()
		return 0, netCapReached(len(n.streams))
	}
	if n.next == ^uint64(0) {
		conn.Close()
		return 0, errNetHandleSpace
	}
	n.next++
	if n.streams == nil {
		n.streams = map[uint64]*netStream{}
	}
	n.streams[n.next] = &netStream{conn: conn}
	return n.next, nil
}

// lookup parses a guest's stream handle and returns the open stream it names.
func (n *instanceNet) lookup(raw []byte) (uint64, *netStream, error) {
	h, err := parseNetHandle(raw)
	if err != nil {
		return 0, nil, err
	}
	st, err := n.get(h)
	return h, st, err
}

// get returns an open stream.
func (n *instanceNet) get(h uint64) (*netStream, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.streams[h]
	if !ok {
		return nil, guestFailed("Stream handle not found")
	}
	return st, nil
}

// remove closes and forgets a stream; false when there was none.
func (n *instanceNet) remove(h uint64) bool {
	n.mu.Lock()
	st, ok := n.streams[h]
	delete(n.streams, h)
	n.mu.Unlock()
	if ok {
		st.conn.Close()
	}
	return ok
}

// close closes every stream and refuses new ones; calls blocked on them end at once.
func (n *instanceNet) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	if n.done == nil {
		n.done = make(chan struct{})
	}
	close(n.done)
	streams := n.streams
	n.streams = nil
	n.mu.Unlock()
	for _, st := range streams {
		st.conn.Close()
	}
}

// isClosed reports whether close has run.
func (n *instanceNet) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// errNetUnloading is the trap of a socket function interrupted by the capsule unloading.
var errNetUnloading = guestFailed("capsule unloading")

// errNetHandleSpace is the trap of an instance that has used every stream handle (2^64).
var errNetHandleSpace = guestFailed("stream handle ID space exhausted")

// netCapReached is upstream's refusal of a 9th stream.
func netCapReached(n int) error {
	return guestFailed("connection cap reached (%d/%d)", n, MaxNetStreams)
}

// deadlineWatch makes a blocked read or write on conn end at once when ctx ends or stop is
// closed: it moves the deadline (set) to the past. arm sets a deadline unless the watch has
// fired, so a deadline set after the watch fired cannot undo it. release ends the watch and
// reports whether it fired.
type deadlineWatch struct {
	fired   atomic.Bool
	set     func(time.Time) error
	stopped chan struct{}
	exited  chan struct{}
}

func watchDeadline(ctx context.Context, stop <-chan struct{}, set func(time.Time) error) *deadlineWatch {
	w := &deadlineWatch{set: set, stopped: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(w.exited)
		select {
		case <-w.stopped:
			return
		case <-ctx.Done():
		case <-stop:
		}
		w.fired.Store(true)
		set(time.Unix(1, 0))
	}()
	return w
}

func (w *deadlineWatch) arm(t time.Time) {
	w.set(t)
	if w.fired.Load() {
		w.set(time.Unix(1, 0))
	}
}

func (w *deadlineWatch) release() bool {
	close(w.stopped)
	<-w.exited
	w.set(time.Time{})
	return w.fired.Load()
}

// isPeerDisconnect reports whether a read or write error is the peer going away (upstream's
// is_peer_disconnect: broken pipe, connection reset or aborted, unexpected EOF).
func isPeerDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED)
}

// read reads the stream's next frame as astrid_net_read answers: netReadData and the frame,
// netReadClosed when the peer has gone, netReadPending when no length prefix came within
// netPollWait or the read was interrupted (ctx, stop). A frame over 10 MiB, a body that does not
// come in time and other socket errors are the guest's traps, in upstream's words.
func (st *netStream) read(ctx context.Context, stop <-chan struct{}) (byte, []byte, error) {
	st.readMu.Lock()
	defer st.readMu.Unlock()
	w := watchDeadline(ctx, stop, st.conn.SetReadDeadline)
	status, body, err := st.readFrame(w)
	if w.release() && (err != nil || status == netReadPending) {
		return netReadPending, nil, nil // interrupted: the capsule is unloading or its call ended
	}
	return status, body, err
}

func (st *netStream) readFrame(w *deadlineWatch) (byte, []byte, error) {
	if !st.bodySet {
		w.arm(time.Now().Add(netPollWait))
		n, err := io.ReadFull(st.conn, st.hdr[st.hdrN:])
		st.hdrN += n
		switch {
		case err == nil:
		case isTimeout(err):
			return netReadPending, nil, nil
		case isPeerDisconnect(err):
			return netReadClosed, nil, nil
		default:
			return 0, nil, guestFailed("socket read error: %s", err)
		}
		st.hdrN = 0
		size := binary.BigEndian.Uint32(st.hdr[:])
		if size > shared.MaxNetFrameBytes {
			return 0, nil, guestFailed("Payload too large (max 10MB)")
		}
		st.body, st.bodyN, st.bodySet = make([]byte, size), 0, true
	}
	w.arm(time.Now().Add(netBodyBaseWait + time.Duration(len(st.body)/1024)*time.Millisecond))
	n, err := io.ReadFull(st.conn, st.body[st.bodyN:])
	st.bodyN += n
	switch {
	case err == nil:
	case isTimeout(err):
		return 0, nil, guestFailed("Payload read timed out")
	case isPeerDisconnect(err):
		return netReadClosed, nil, nil
	default:
		return 0, nil, guestFailed("socket payload read error: %s", err)
	}
	body := st.body
	st.body, st.bodyN, st.bodySet = nil, 0, false
	return netReadData, body, nil
}

// write sends data as one frame. It reports only whether it was interrupted (ctx, stop): a
// failed write (the client has gone) is only logged, as upstream, and the next read says
// Closed.
func (st *netStream) write(ctx context.Context, stop <-chan struct{}, data []byte) (interrupted bool, err error) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	w := watchDeadline(ctx, stop, st.conn.SetWriteDeadline)
	err = syssock.WriteFrame(st.conn, data)
	return w.release(), err
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// cliSocket returns the host's CLI socket, binding STATE/run/system.sock and writing a fresh
// STATE/run/system.token on first use (when the first capsule that declares net_bind loads).
// The socket is the host's, shared by every such capsule, as upstream's one pre-bound listener:
// each connection goes to one of the capsules accepting. It is closed by Shutdown.
func (h *Host) cliSocket() (*syssock.Server, error) {
	h.sockMu.Lock()
	defer h.sockMu.Unlock()
	if h.sock != nil {
		return h.sock, nil
	}
	if h.sockClosed {
		return nil, errors.New("the host is shutting down")
	}
	s, err := syssock.Listen(h.cfg.StateDir, manifest.RuntimeVersion)
	if err != nil {
		return nil, fmt.Errorf("the CLI socket: %w", err)
	}
	h.log.Info("CLI socket bound", "socket", s.Path(), "token", s.TokenPath())
	h.sock = s
	return s, nil
}

// closeCLISocket closes the CLI socket, if it was bound: the socket and token files are removed.
func (h *Host) closeCLISocket() {
	h.sockMu.Lock()
	s := h.sock
	h.sock, h.sockClosed = nil, true
	h.sockMu.Unlock()
	if s != nil {
		s.Close()
	}
}
