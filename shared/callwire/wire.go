// Package callwire is the call path between astrid-host and one astrid-shim: export calls
// (host → shim) and the host functions of shared.HostCalls (shim → host), carried as frames on
// one long-lived connection instead of one gRPC request each.
//
// The connection is two pipes, one each way, that the host creates when it starts the shim (see
// pipes.go for why not a socket): the shim inherits its ends (EnvShimCallsFD), so no path exists
// that another process could open, and the host's ends belong to exactly one shim process, hence
// to the instance that process runs.
// The host's health checks go on it too (Ping, Pong: an idle shim answers them without
// allocating). go-plugin still starts, supervises and connects the shim; everything else (Load,
// Shutdown, logs, processes) stays on gRPC.
//
// A frame is a 16-byte header, little-endian — the body's length (u32), the kind (u8), three zero
// bytes and the request id (u64) — followed by the body, a protobuf message of shared/pb whose
// type the kind names. Each reader bounds the body's length before it allocates anything.
package callwire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Kind says what a frame carries.
type Kind uint8

// The frame kinds. Call, HostResult, HostError, Published and Ping go from the host to the shim;
// the others from the shim to the host.
const (
	// Call is an export call: pb.InvokeRequest. The host sends at most one at a time.
	Call Kind = 1
	// CallResult answers the Call of the same id: pb.InvokeResponse.
	CallResult Kind = 2
	// HostCall runs one host function for the guest: pb.HostCallRequest. A shim sends at most one
	// at a time (its guest runs on one thread).
	HostCall Kind = 3
	// HostResult answers the HostCall of the same id: pb.HostCallResponse.
	HostResult Kind = 4
	// HostError answers the HostCall of the same id with an error status (the request itself was
	// wrong): google.rpc.Status.
	HostError Kind = 5
	// Cancel tells the host the HostCall of the same id is no longer awaited (the guest's call
	// ran out of time or the capsule is unloading): no body.
	Cancel Kind = 6
	// Publish carries a batch of the guest's publishes, in the order it made them (shim → host):
	// pb.IpcPublishRequest, at most MaxHostFrameBytes. A shim sends them without waiting for the
	// answers, at most MaxPublishesInFlight unanswered. The host checks and publishes a batch
	// before it reads the next frame, so the batch reaches the bus before anything the shim sends
	// after it (a host call, another batch), and answers with the Published of the same id.
	Publish Kind = 7
	// Published answers the Publish of the same id (host → shim): google.rpc.Status, OK when the
	// host took every publication of the batch, otherwise why not (those before the refused one
	// were published).
	Published Kind = 8
	// Ping is the host's health check (host → shim): no body. The shim answers with the Pong of
	// the same id (see ping.go).
	Ping Kind = 9
	// Pong answers the Ping of the same id: pb.HealthResponse, at most maxPongBytes.
	Pong Kind = 10
	// Log carries a batch of the capsule's log lines, in the order they came (shim → host):
	// pb.LogRequest, at most MaxLogBatch lines and MaxHostFrameBytes. No answer and no id: the
	// host writes the lines before it reads the next frame, so they come before anything the shim
	// sends after them (the result of the call that logged them).
	Log Kind = 11
)

// MaxPublishesInFlight is the most Publish frames a shim sends without their answers; past it,
// the guest's next batch waits (backpressure on a guest that publishes faster than the host
// takes).
const MaxPublishesInFlight = 4

func (k Kind) String() string {
	switch k {
	case Call:
		return "call"
	case CallResult:
		return "call result"
	case HostCall:
		return "host call"
	case HostResult:
		return "host result"
	case HostError:
		return "host error"
	case Cancel:
		return "cancel"
	case Publish:
		return "publish"
	case Published:
		return "published"
	case Ping:
		return "ping"
	case Pong:
		return "pong"
	case Log:
		return "log"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// HeaderBytes is the size of a frame's header.
const HeaderBytes = 16

// EnvShimCallsFD names the descriptors of the shim's ends of the call connection: "IN,OUT", the
// pipe it reads the host's frames from and the one it writes its own to.
const EnvShimCallsFD = "ASTRID_SHIM_CALLS_FD"

// ErrTooLarge is returned (wrapped) by ReadFrame for a frame whose body is longer than the
// reader's limit; nothing of the body has been read.
var ErrTooLarge = errors.New("frame too large")

// Conn is one end of the call connection: frames are written whole under a lock, so any
// goroutine may write; one goroutine at a time reads (the one holding the end's read turn).
type Conn struct {
	in, out *os.File // the pipe read from and the pipe written to (see pipes.go)
	r       *bufio.Reader
	sr      *sysReader // under r

	wmu  sync.Mutex
	wbuf []byte
	// deferred are frames queued by DeferEmptyFrame, written before the next frame; bufs is the
	// reused list of buffers for a write of several.
	deferred []byte
	bufs     [][]byte

	// The frame being read: a read interrupted part-way (ReadFrameContext) leaves it here, and
	// the next ReadFrame goes on from where it stopped, so the stream never loses its framing.
	hdr      [HeaderBytes]byte
	hdrRead  int  // bytes of hdr read so far
	inBody   bool // hdr is complete and checked; the body is being read
	bodyRead int  // bytes of rbuf read so far
	rbuf     []byte

	// spare is a body TakeBody took and GiveBody gave back, for the next frame that needs a
	// buffer; taken is the whole buffer of the body TakeBody took last, so that GiveBody, handed
	// a view of it (a result inside the body), keeps all of it.
	spareMu sync.Mutex
	spare   []byte
	taken   []byte

	waiter *waiter         // waits for in on the calling thread (ReadFrameThread)
	raw    syscall.RawConn // out's descriptor (writeNow)
	w      *sysWriter      // writes out; used with wmu held
}

// newConn wraps the two ends of a call connection, each a non-blocking descriptor in Go's
// netpoller (os.NewFile of a non-blocking pipe end).
func newConn(in, out *os.File) (*Conn, error) {
	rin, err := in.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("call connection %s: %w", in.Name(), err)
	}
	rout, err := out.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("call connection %s: %w", out.Name(), err)
	}
	c := &Conn{in: in, out: out, sr: newSysReader(rin), waiter: &waiter{fd: rin, keepP: waitKeepingP}, raw: rout, w: newSysWriter(rout)}
	c.r = bufio.NewReaderSize(c.sr, 64<<10) // (see rawio.go)
	return c, nil
}

// Close closes the connection; a blocked ReadFrame returns an error, and the other end reads
// the end of its stream.
func (c *Conn) Close() error {
	c.waiter.close()
	return errors.Join(c.in.Close(), c.out.Close())
}

// ReadFrameThread is ReadFrameContext for a goroutine locked to its thread (a guest's host
// call): while nothing is buffered it waits for the pipe in poll(2) on its own thread (see
// waiter) rather than in Go's network poller.
func (c *Conn) ReadFrameThread(ctx context.Context, limit int) (kind Kind, id uint64, body []byte, err error) {
	if c.r.Buffered() == 0 {
		if err := c.waiter.wait(ctx); err != nil {
			if errors.Is(err, errInterrupted) {
				return 0, 0, nil, err
			}
			return 0, 0, nil, fmt.Errorf("wait for a frame: %w", err)
		}
	}
	// The frame has begun to arrive: it is read without watching ctx as long as its bytes are
	// there (a host call's answer comes in one write), and only what waits for the rest of a
	// frame watches ctx (ReadFrameContext registers with ctx, which allocates, for each read).
	kind, id, body, err = c.readFrameNoWait(limit)
	if !errors.Is(err, errWouldBlock) {
		return kind, id, body, err
	}
	return c.ReadFrameContext(ctx, limit)
}

// readFrameNoWait is ReadFrame that returns errWouldBlock, rather than wait, when the rest of
// the frame is not there yet; what it read of the frame is kept for the next ReadFrame.
func (c *Conn) readFrameNoWait(limit int) (kind Kind, id uint64, body []byte, err error) {
	c.sr.noWait = true
	kind, id, body, err = c.ReadFrame(limit)
	c.sr.noWait = false
	return kind, id, body, err
}

// keepBuffer is the largest buffer a Conn keeps between frames: larger ones (a 10 MiB input) are
// let go after use rather than held for the connection's life.
const keepBuffer = 1 << 20

// WriteFrame sends one frame whose body is m (nil for none) in one write.
func (c *Conn) WriteFrame(kind Kind, id uint64, m proto.Message) error {
	return c.WriteFrameAfter(nil, 0, 0, kind, id, m)
}

// WriteFrameAfter sends, in one write, the frame pre (nil for none; as for WriteFrameBuffer:
// HeaderBytes of room for its header, then its body, of kind preKind and id preID) and then
// the frame whose body is m: one system call, and one wake-up of the reader at the other end
// instead of two. pre is the caller's again once WriteFrameAfter returns.
func (c *Conn) WriteFrameAfter(pre []byte, preKind Kind, preID uint64, kind Kind, id uint64, m proto.Message) error {
	if pre != nil {
		if err := putHeader(pre, preKind, preID); err != nil {
			return err
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf := append(c.wbuf[:0], make([]byte, HeaderBytes)...)
	if m != nil {
		var err error
		buf, err = proto.MarshalOptions{}.MarshalAppend(buf, m)
		if err != nil {
			return fmt.Errorf("encode a %s frame: %w", kind, err)
		}
	}
	err := putHeader(buf, kind, id)
	if err == nil {
		err = c.writeLocked(pre, buf)
	}
	if cap(buf) <= keepBuffer {
		c.wbuf = buf
	} else {
		c.wbuf = nil
	}
	if err != nil {
		return fmt.Errorf("send a %s frame: %w", kind, err)
	}
	return nil
}

// WriteBytesFieldFrame sends one frame whose body is a message with a single field set, the
// bytes field field = value, encoded as proto.Marshal encodes it, without copying value into a
// buffer of its own (the header and the field's tag and length go first in the same write): a
// host call's result of up to 10 MiB crosses with the one copy into the pipe.
func (c *Conn) WriteBytesFieldFrame(kind Kind, id uint64, field protowire.Number, value []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	head, value, err := c.bytesFieldHead(kind, id, field, value)
	if err != nil {
		return err
	}
	err = c.writeLocked(head, value)
	c.wbuf = head
	if err != nil {
		return fmt.Errorf("send a %s frame: %w", kind, err)
	}
	return nil
}

// bytesFieldHead encodes, in wbuf, the header and the field's tag and length of a
// WriteBytesFieldFrame frame; value comes back nil when empty (proto3 leaves it out). Called with
// wmu held.
func (c *Conn) bytesFieldHead(kind Kind, id uint64, field protowire.Number, value []byte) (head, val []byte, err error) {
	head = append(c.wbuf[:0], make([]byte, HeaderBytes)...)
	if len(value) > 0 { // proto3 leaves an empty bytes field out
		head = protowire.AppendTag(head, field, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(len(value)))
	} else {
		value = nil
	}
	if uint64(len(head)-HeaderBytes)+uint64(len(value)) > 0xffffffff {
		return nil, nil, fmt.Errorf("encode a %s frame: a body of %d bytes does not fit the frame's 32-bit length", kind, len(value))
	}
	binary.LittleEndian.PutUint32(head[0:], uint32(len(head)-HeaderBytes+len(value)))
	head[4] = byte(kind)
	head[5], head[6], head[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(head[8:], id)
	return head, value, nil
}

// WriteFrameBuffer sends one frame whose body is already encoded: frame is HeaderBytes bytes
// of room for the header, which WriteFrameBuffer fills in, followed by the body. frame is the
// caller's again once WriteFrameBuffer returns.
func (c *Conn) WriteFrameBuffer(kind Kind, id uint64, frame []byte) error {
	if err := putHeader(frame, kind, id); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writeLocked(nil, frame); err != nil {
		return fmt.Errorf("send a %s frame: %w", kind, err)
	}
	return nil
}

// putHeader fills in the header of frame, whose first HeaderBytes bytes are room for it.
func putHeader(frame []byte, kind Kind, id uint64) error {
	if len(frame) < HeaderBytes {
		return fmt.Errorf("encode a %s frame: %d bytes leave no room for the header", kind, len(frame))
	}
	n := len(frame) - HeaderBytes
	if uint64(n) > 0xffffffff {
		return fmt.Errorf("encode a %s frame: a body of %d bytes does not fit the frame's 32-bit length", kind, n)
	}
	binary.LittleEndian.PutUint32(frame[0:], uint32(n))
	frame[4] = byte(kind)
	frame[5], frame[6], frame[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(frame[8:], id)
	return nil
}

// maxDeferredFrames is the most frames DeferEmptyFrame holds back: the one that would make
// more is written at once, with those held. A shim keeps at most MaxPublishesInFlight batches
// unanswered, so it never meets the bound; a shim that sends batch after batch without letting
// the host's read buffer empty does, and the host's memory for deferred answers stays bounded.
const maxDeferredFrames = 4 * MaxPublishesInFlight

// DeferEmptyFrame queues a frame without a body (a Published with status OK encodes as none)
// to go out with the next frame written, in the same write, or at FlushDeferred: a frame the
// other end need not have at once costs it no wake-up of its own. Past maxDeferredFrames held
// back, it writes them all at once instead.
func (c *Conn) DeferEmptyFrame(kind Kind, id uint64) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(c.deferred)
	c.deferred = append(c.deferred, make([]byte, HeaderBytes)...)
	_ = putHeader(c.deferred[n:], kind, id) // (an empty body always fits)
	if len(c.deferred) < maxDeferredFrames*HeaderBytes {
		return nil
	}
	if err := c.writeLocked(nil); err != nil {
		return fmt.Errorf("send deferred frames: %w", err)
	}
	return nil
}

// FlushDeferred writes the frames DeferEmptyFrame queued, if any.
func (c *Conn) FlushDeferred() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.deferred) == 0 {
		return nil
	}
	if err := c.writeLocked(nil); err != nil {
		return fmt.Errorf("send deferred frames: %w", err)
	}
	return nil
}

// writeLocked writes the deferred frames and then each of frames (nil ones skipped) with one
// system call (writev when there are several). Called with wmu held.
func (c *Conn) writeLocked(frames ...[]byte) error {
	bufs := c.bufs[:0]
	if len(c.deferred) > 0 {
		bufs = append(bufs, c.deferred)
	}
	for _, f := range frames {
		if f != nil {
			bufs = append(bufs, f)
		}
	}
	err := c.w.writeAll(bufs)
	clear(bufs)
	c.bufs = bufs[:0]
	c.deferred = c.deferred[:0]
	return err
}

// Buffered reports whether the next frame has begun to arrive: part of it is read or waits in
// the read buffer, so the next ReadFrame does not start by waiting for the other end.
func (c *Conn) Buffered() bool {
	return c.hdrRead > 0 || c.inBody || c.r.Buffered() > 0
}

// NextKind returns the kind of the next frame if its whole header waits in the read buffer (none
// of it read yet), without reading it.
func (c *Conn) NextKind() (Kind, bool) {
	if c.hdrRead > 0 || c.inBody || c.r.Buffered() < HeaderBytes {
		return 0, false
	}
	h, err := c.r.Peek(HeaderBytes)
	if err != nil {
		return 0, false
	}
	return Kind(h[4]), true
}

// ReadFrame reads the next frame. limit bounds its body's length, checked before the body is read
// (ErrTooLarge). The body is valid until the next ReadFrame.
func (c *Conn) ReadFrame(limit int) (kind Kind, id uint64, body []byte, err error) {
	if !c.inBody {
		for c.hdrRead < HeaderBytes {
			n, err := c.r.Read(c.hdr[c.hdrRead:])
			c.hdrRead += n
			if err != nil && c.hdrRead < HeaderBytes {
				if errors.Is(err, io.EOF) && c.hdrRead > 0 {
					err = io.ErrUnexpectedEOF
				}
				return 0, 0, nil, err
			}
		}
		h := c.hdr[:]
		n := binary.LittleEndian.Uint32(h[0:])
		kind := Kind(h[4])
		if h[5] != 0 || h[6] != 0 || h[7] != 0 {
			return 0, 0, nil, fmt.Errorf("a %s frame's reserved header bytes are %x, not zero", kind, h[5:8])
		}
		if uint64(n) > uint64(limit) {
			return 0, 0, nil, fmt.Errorf("%w: a %s frame of %d bytes; the limit is %d bytes", ErrTooLarge, kind, n, limit)
		}
		c.rbuf = c.readBuffer(int(n))
		c.inBody, c.bodyRead = true, 0
	}
	kind, id = Kind(c.hdr[4]), binary.LittleEndian.Uint64(c.hdr[8:])
	for c.bodyRead < len(c.rbuf) {
		n, err := c.r.Read(c.rbuf[c.bodyRead:])
		c.bodyRead += n
		if err != nil && c.bodyRead < len(c.rbuf) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, nil, fmt.Errorf("read a %s frame's %d-byte body: %w", kind, len(c.rbuf), err)
		}
	}
	c.hdrRead, c.inBody = 0, false
	return kind, id, c.rbuf, nil
}

// TakeBody makes the body ReadFrame last returned the caller's to keep: the next ReadFrame
// reads into a buffer of its own rather than over it. For a large body handed on as it is
// (a host call's result) instead of copied; GiveBody hands it back once used.
func (c *Conn) TakeBody() {
	c.spareMu.Lock()
	c.taken = c.rbuf
	c.spareMu.Unlock()
	c.rbuf = nil
}

// GiveBody hands back a body TakeBody took, once nothing refers to it any more: a later frame
// that needs a buffer reads into it rather than into a new one (which the runtime would clear
// and collect). Any goroutine may call it; a body larger than the buffers a Conn keeps is let go.
//
// b may be a view of the body (what follows a field's tag and length): the whole buffer is kept,
// not the view's shorter capacity, which the next frame of the same size would not fit.
func (c *Conn) GiveBody(b []byte) {
	if cap(b) == 0 || cap(b) > keepBuffer {
		return
	}
	c.spareMu.Lock()
	if sameBuffer(b, c.taken) {
		b = c.taken
	}
	c.taken = nil
	c.spare = b[:0]
	c.spareMu.Unlock()
}

// sameBuffer reports whether b and whole end at the same byte of the same array: b is a view of
// whole's buffer (a slice of it that reaches to its capacity).
func sameBuffer(b, whole []byte) bool {
	return cap(b) > 0 && cap(whole) >= cap(b) && &b[:cap(b)][cap(b)-1] == &whole[:cap(whole)][cap(whole)-1]
}

// readBuffer returns a buffer of n bytes for a body: the read buffer, else the spare GiveBody
// handed back, else a new one.
func (c *Conn) readBuffer(n int) []byte {
	if cap(c.rbuf) >= n && cap(c.rbuf) <= keepBuffer {
		return c.rbuf[:n]
	}
	c.spareMu.Lock()
	spare := c.spare
	if cap(spare) >= n {
		c.spare = nil
	}
	c.spareMu.Unlock()
	if cap(spare) >= n {
		return spare[:n]
	}
	// An eighth more than this frame, within what a Conn keeps: the next frame of about the same
	// size (a stream of envelopes of a few hundred messages each) fits it, rather than each one a
	// few bytes larger than the last getting a new buffer, which the runtime clears.
	return make([]byte, n, max(n, min(n+n/8, keepBuffer)))
}

// errInterrupted is what ReadFrameContext returns (wrapped with the context's error) when ctx
// ended before a whole frame came.
var errInterrupted = errors.New("read interrupted")

// ReadFrameContext is ReadFrame that returns early, with an error wrapping errInterrupted and
// ctx's error, when ctx ends first. The part of a frame read by then is kept for the next read.
func (c *Conn) ReadFrameContext(ctx context.Context, limit int) (kind Kind, id uint64, body []byte, err error) {
	if ctx.Done() == nil {
		return c.ReadFrame(limit)
	}
	r := c.readsUnder(ctx)
	defer r.close()
	return r.ReadFrame(limit)
}

// ctxReads interrupts one goroutine's reads of a Conn when ctx ends, for a goroutine that reads
// frame after frame under the same ctx (HostEnd.readHeld): it registers with ctx once, where
// ReadFrameContext registers for each read (context.AfterFunc allocates and locks ctx's
// parent: a few µs a frame, measured in the host's profile of BenchmarkPublishRecvLatency).
// The read deadline that does the interrupting is set only while one of its reads runs: a
// goroutine that hands the read turn to another leaves nothing behind that would cut that one's
// read short.
type ctxReads struct {
	c    *Conn
	ctx  context.Context
	stop func() bool // ends the registration; nil when ctx cannot end

	mu    sync.Mutex
	armed bool // a read runs
	fired bool // ctx ended while it ran: the deadline is set
}

// readsUnder returns the reads of c under ctx; close it once done reading.
func (c *Conn) readsUnder(ctx context.Context) *ctxReads {
	r := &ctxReads{c: c, ctx: ctx}
	if ctx.Done() != nil {
		r.stop = context.AfterFunc(ctx, r.interrupt)
	}
	return r
}

// interrupt cuts the read in progress short (ctx has ended).
func (r *ctxReads) interrupt() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.armed {
		r.fired = true
		r.c.in.SetReadDeadline(time.Unix(1, 0))
	}
}

// ReadFrame is Conn.ReadFrame that returns early, with an error wrapping errInterrupted and
// ctx's error, when ctx ends first (or has ended).
func (r *ctxReads) ReadFrame(limit int) (kind Kind, id uint64, body []byte, err error) {
	if r.stop == nil {
		return r.c.ReadFrame(limit)
	}
	// Armed before ctx is checked: ctx's error is set before its AfterFuncs run, so an end that
	// came before the arming is seen here, and one that comes after sets the deadline.
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
	ended := r.ctx.Err() != nil
	if !ended {
		kind, id, body, err = r.c.ReadFrame(limit)
	}
	r.mu.Lock()
	r.armed = false
	fired := r.fired
	if fired {
		r.fired = false
		r.c.in.SetReadDeadline(time.Time{})
	}
	r.mu.Unlock()
	if ended || fired && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, 0, nil, fmt.Errorf("%w: %w", errInterrupted, r.ctx.Err())
	}
	return kind, id, body, err
}

// close ends the registration with ctx.
func (r *ctxReads) close() {
	if r.stop != nil {
		r.stop()
	}
}

// Decode decodes a frame's body into m, naming the frame in the error.
func Decode(kind Kind, body []byte, m proto.Message) error {
	if err := proto.Unmarshal(body, m); err != nil {
		return fmt.Errorf("decode a %s frame: %w", kind, err)
	}
	return nil
}
