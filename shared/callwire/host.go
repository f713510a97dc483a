package callwire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// fieldHostCallResult is the field number of pb.HostCallResponse's result.
const fieldHostCallResult = 1

// MaxHostFrameBytes is the longest frame body the host reads from a shim: a call's result or a
// host call's argument blocks, each at most shared.MaxPayloadBytes, with room for the envelope
// (shared.MaxMessageBytes, gRPC's limit before).
const MaxHostFrameBytes = shared.MaxMessageBytes

// HostFunc performs one host call for the shim's instance. An error that is a gRPC status is
// sent to the shim as is; any other as FailedPrecondition.
type HostFunc func(ctx context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error)

// HostEnd is the host's end of one shim's call connection: it sends export calls and serves the
// shim's host calls, all for the one instance the connection belongs to. A host call is run by
// the goroutine that read it (see readTurn).
type HostEnd struct {
	c *Conn

	// publish takes the shim's Publish frames (HandlePublishes); nil refuses them.
	publish PublishFunc
	// pubs is the decoded batch of the Publish frame being handled, reused from frame to frame.
	pubs []Publication
	// log takes the shim's Log frames (HandleLogs); nil refuses them.
	log LogFunc
	// answered is told of each host call's result once it is sent (HandleAnswered); may be nil.
	answered AnsweredFunc
	// quick says which host calls an Invoke that reads may run itself (HandleQuick); may be nil.
	quick func(*pb.HostCallRequest) bool

	calls requests[*pb.InvokeResponse]
	pings requests[Health]
	turn  *readTurn

	// Set by Serve before it reads.
	hostCall  HostFunc
	violation func(error) error
	ctx       context.Context // ends with the connection: host calls in progress are cancelled
	cancelAll context.CancelFunc

	// late counts the host calls waiting to be answered later (LateAnswer).
	late atomic.Int32
	// invoking counts the Invokes in progress.
	invoking atomic.Int32
	// handedOff counts the call answers read by a goroutine other than the Invoke waiting for
	// them, and serveTurns the times Serve's goroutine took the turn (tests check that one
	// turn hands at most one answer on).
	handedOff, serveTurns atomic.Int64

	mu sync.Mutex
	// hostCalls holds the host call in progress, by id.
	hostCalls map[uint64]*Late
	done      chan struct{}
}

// PublishFunc checks and publishes the batch of one Publish frame for the shim's instance, in
// order. The publications are views into the frame, valid only until PublishFunc returns. Its
// error (nil when the batch is settled) is the shim's answer: a gRPC status is sent as is, any
// other error as FailedPrecondition.
type PublishFunc func(pubs []Publication) error

// HandlePublishes makes Serve hand the shim's Publish frames to publish; call it before Serve.
// Without it a Publish frame is a violation.
func (e *HostEnd) HandlePublishes(publish PublishFunc) { e.publish = publish }

// AnsweredFunc is told of a host call's result once the HostResult frame carrying it has been
// written (or failed to be): the connection keeps no reference to resp after that, so its owner
// may reuse resp's buffers.
type AnsweredFunc func(req *pb.HostCallRequest, resp *pb.HostCallResponse)

// HandleAnswered makes Serve tell answered of each host call's result once it is sent; call it
// before Serve.
func (e *HostEnd) HandleAnswered(answered AnsweredFunc) { e.answered = answered }

// HandleQuick tells Serve which host calls return at once (they never wait for anything outside
// the host's memory): an Invoke that reads the connection itself runs those on its own goroutine,
// and any other on a goroutine of its own, so that the Invoke still returns as soon as its
// context ends. Call it before Serve; without it no host call is run by an Invoke.
func (e *HostEnd) HandleQuick(quick func(*pb.HostCallRequest) bool) { e.quick = quick }

// NewHostEnd wraps the host's end of a call connection (from Pair).
func NewHostEnd(c *Conn) *HostEnd {
	e := &HostEnd{c: c, turn: newReadTurn(), hostCalls: map[uint64]*Late{}, done: make(chan struct{})}
	e.turn.ch <- struct{}{} // Serve's until it starts: no frame is read before Serve has its handlers
	return e
}

// Close closes the connection: calls waiting for an answer fail with Unavailable, host calls in
// progress are cancelled once Serve sees the end.
func (e *HostEnd) Close() error {
	err := e.c.Close()
	if e.turn.tryTake() {
		// No one reads now, to see the end: end it here. (A reader that has the turn sees it.)
		e.end(io.EOF)
	}
	return err
}

// Done is closed once Serve has returned (the connection ended).
func (e *HostEnd) Done() <-chan struct{} { return e.done }

// Invoke sends an export call and waits for its result, or for ctx to end (the call is then
// abandoned: its result is dropped when it comes), or for the connection to end (Unavailable: the
// shim is gone). The errors are gRPC statuses, as the unary RPC this replaces gave. While no
// other goroutine reads the connection, Invoke reads the answer itself (see readHeld).
func (e *HostEnd) Invoke(ctx context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
	e.invoking.Add(1) // (Serve's goroutine mostly leaves the reading to it: see watch)
	defer e.invoking.Add(-1)
	id, ch, err := e.calls.send(func(id uint64) error { return e.c.WriteFrame(Call, id, req) })
	if err != nil {
		return nil, err
	}
	for {
		select {
		case a := <-ch:
			return a.resp, a.err
		case <-ctx.Done():
			return e.calls.abandon(ctx, id, nil)
		case e.turn.ch <- struct{}{}:
			// No one reads: read until the answer comes (or ctx ends, or another goroutine
			// takes the reading over while this one runs a host call).
			e.readHeld(ctx, ch, nil)
			if len(ch) == 0 && ctx.Err() != nil {
				return e.calls.abandon(ctx, id, nil)
			}
		}
	}
}

// Serve reads the shim's frames until the connection ends: call results go to the Invoke that
// waits for them, host calls to hostCall, one at a time. A frame a correct shim never sends (an
// unknown kind, a result nobody waits for, a second host call while one runs, an oversized or
// undecodable body) is given to violation, and Serve returns its error: the host stops a shim
// it no longer trusts. When Serve returns, every waiting Invoke fails with Unavailable and every
// host call in progress is cancelled.
//
// Serve's goroutine reads whenever the connection has gone unread for takeoverDelay (see
// watch); while calls follow one another, each Invoke reads its own answer.
func (e *HostEnd) Serve(hostCall HostFunc, violation func(error) error) error {
	e.hostCall, e.violation = hostCall, violation
	e.ctx, e.cancelAll = context.WithCancel(context.Background())
	e.serveTurns.Add(1)
	e.readHeld(context.Background(), nil, always) // the turn is held from NewHostEnd on
	e.watch()
	<-e.turn.ended
	close(e.done)
	return e.turn.endErr
}

// end ends the connection (once): err says why. Waiting calls fail with Unavailable, host calls
// in progress are cancelled. The turn stays with the goroutine that ended it: no one reads after.
func (e *HostEnd) end(err error) {
	if e.turn.end(err) {
		e.cancelAll()
		e.mu.Lock()
		inProgress := make([]*Late, 0, len(e.hostCalls))
		for _, l := range e.hostCalls {
			inProgress = append(inProgress, l)
		}
		e.mu.Unlock()
		for _, l := range inProgress {
			l.cancelled()
		}
		e.calls.end(err)
		e.pings.end(err)
		e.c.Close()
	}
}

// handle acts on one frame from the shim. It returns the host call to run, if the frame is
// one; an error (a violation's) ends the connection.
//
// quick says the host call is one that returns at once (HandleQuick); delivered, that the frame
// was a call's answer and went to the Invoke waiting for it.
func (e *HostEnd) handle(kind Kind, id uint64, body []byte) (run func(arm func()), quick, delivered bool, err error) {
	switch kind {
	case CallResult:
		resp := &pb.InvokeResponse{}
		if err := Decode(kind, body, resp); err != nil {
			return nil, false, false, e.violation(err)
		}
		waited, sent := e.calls.deliver(id, answer[*pb.InvokeResponse]{resp: resp})
		if !waited && !sent {
			return nil, false, false, e.violation(fmt.Errorf("a call result for call %d, which the host never sent", id))
		} // (a result nobody waits for answers an abandoned call)
		return nil, false, waited, nil
	case HostCall:
		req := &pb.HostCallRequest{}
		if err := Decode(kind, body, req); err != nil {
			return nil, false, false, e.violation(err)
		}
		hctx, cancel := context.WithCancel(e.ctx)
		l := &Late{e: e, id: id, req: req, ctx: hctx, cancel: cancel}
		e.mu.Lock()
		busy := len(e.hostCalls) > 0
		if !busy {
			e.hostCalls[id] = l
		}
		e.mu.Unlock()
		if busy {
			cancel()
			return nil, false, false, e.violation(fmt.Errorf("host call %d while another is in progress (a guest makes one at a time)", id))
		}
		return func(arm func()) {
			l.arm = arm
			e.runHostCall(context.WithValue(hctx, lateKey{}, l), l)
		}, e.quick != nil && e.quick(req), false, nil
	case Publish:
		if e.publish == nil {
			return nil, false, false, e.violation(errors.New("a publish frame, but this connection takes no publishes"))
		}
		pubs, err := DecodePublishes(body, e.pubs)
		if err != nil {
			return nil, false, false, e.violation(fmt.Errorf("decode a %s frame: %w", kind, err))
		}
		// Published before the next frame is read: the batch reaches the bus before anything
		// the shim sent after it.
		err = e.publish(pubs)
		clear(pubs) // no view of this frame outlives it
		e.pubs = pubs[:0]
		if next, ok := e.c.NextKind(); ok && next == HostCall && err == nil {
			// The shim sent a host call right after the batch (in the same write): the answer
			// goes out with the next frame the host writes (the host call's answer, usually),
			// or before the host next waits to read, rather than as a write and a wake-up of
			// the shim of its own. The shim waits for the answer only to send a fifth batch,
			// which its guest, waiting for the host call, cannot make meanwhile.
			_ = e.c.DeferEmptyFrame(Published, id)
			break
		}
		_ = e.c.WriteFrame(Published, id, statusOf(err).Proto())
	case Log:
		if e.log == nil {
			return nil, false, false, e.violation(errors.New("a log frame, but this connection takes no log lines"))
		}
		req, err := decodeLog(body)
		if err != nil {
			return nil, false, false, e.violation(err)
		}
		e.log(req) // before the next frame is read: the lines come before the call's result
	case Pong:
		if err := e.handlePong(id, body); err != nil {
			return nil, false, false, err
		}
	case Cancel:
		// The shim has stopped waiting: the next host call may come before this one's
		// handler has noticed, so it no longer counts as in progress.
		e.mu.Lock()
		l := e.hostCalls[id]
		delete(e.hostCalls, id)
		e.mu.Unlock()
		if l != nil {
			l.cancelled()
		}
	default:
		return nil, false, false, e.violation(fmt.Errorf("a %s frame, which only the host sends", kind))
	}
	return nil, false, false, nil
}

// runHostCall performs one host call and sends its answer (the shim drops the answer to a host
// call it cancelled), unless the HostFunc leaves it to be answered later (ErrAnswerLater).
func (e *HostEnd) runHostCall(ctx context.Context, l *Late) {
	resp, err := e.hostCall(ctx, l.req)
	if errors.Is(err, ErrAnswerLater) && l.taken.Load() {
		return // l.Answer sends it
	}
	if l.done.CompareAndSwap(false, true) {
		l.finish(resp, err, false)
	}
}

// ErrAnswerLater, returned by a HostFunc that took the call's Late (LateAnswer), leaves the
// answer to whichever goroutine calls Late.Answer: the goroutine that read the call goes back to
// reading the connection at once instead of waiting with the call.
var ErrAnswerLater = errors.New("the host call is answered later")

type lateKey struct{}

// Late is a host call that a goroutine other than the one that read it may answer: a recv that
// waits for a message is answered by the goroutine that publishes it, with no hand-off to a
// goroutine parked in the recv. It is answered exactly once (Answer reports whether this call
// was the one); until then it counts as the host call in progress, and a Cancel frame or the
// connection's end cancels its context.
type Late struct {
	e      *HostEnd
	id     uint64
	req    *pb.HostCallRequest
	ctx    context.Context // the call's (without the Late's value)
	cancel context.CancelFunc
	taken  atomic.Bool // LateAnswer handed it out
	done   atomic.Bool // answered
	arm    func()      // arms the takeover of the read turn (MayWait)

	cancelMu sync.Mutex
	onCancel func() // OnCancel's, until the call's context ends
}

// OnCancel has f run, on a goroutine of its own, when the host call is cancelled (the shim's
// Cancel frame, the connection's end), or at once if it was already; OnCancel(nil) takes f back.
// It is context.AfterFunc on the call's context for a HostFunc that parks the call, without the
// cost of registering with the context's parent and making its done channel in every hop.
func (l *Late) OnCancel(f func()) {
	l.cancelMu.Lock()
	ended := l.ctx.Err() != nil // (cancelled already, or begun as the connection ended)
	if !ended {
		l.onCancel = f
	}
	l.cancelMu.Unlock()
	if ended && f != nil {
		go f()
	}
}

// cancelled cancels the host call: its context, and its OnCancel function. The context ends
// first, so an OnCancel that comes after this has taken f runs its own at once.
func (l *Late) cancelled() {
	l.cancel()
	l.cancelMu.Lock()
	f := l.onCancel
	l.onCancel = nil
	l.cancelMu.Unlock()
	if f != nil {
		go f()
	}
}

// MayWait says that the host call whose context ctx is may run long (it is about to wait for
// something): from takeoverDelay on, another goroutine reads the connection in its place (a
// Cancel frame, the connection's end). A HostFunc that may wait calls it before it waits; one
// that returns at once does not, and costs no timer. A no-op for a context of no host call.
func MayWait(ctx context.Context) {
	if l, _ := ctx.Value(lateKey{}).(*Late); l != nil && l.arm != nil {
		l.arm()
	}
}

// LateAnswer returns the Late of the host call whose context ctx is, for a HostFunc that will
// answer it later; nil when ctx is no host call's of a HostEnd or its Late was taken already.
func LateAnswer(ctx context.Context) *Late {
	l, _ := ctx.Value(lateKey{}).(*Late)
	if l == nil || !l.taken.CompareAndSwap(false, true) {
		return nil
	}
	l.e.late.Add(1)
	return l
}

// Answer sends the host call's answer, as a HostFunc's result would be sent, and reports true;
// false (and nothing is sent) when it was answered already. It may wait for the shim to read;
// AnswerNoWait does not.
func (l *Late) Answer(resp *pb.HostCallResponse, err error) bool {
	if !l.done.CompareAndSwap(false, true) {
		return false
	}
	l.finish(resp, err, false)
	return true
}

// AnswerNoWait is Answer for a goroutine that must not wait on this shim (another shim's
// reader): the frame is written without blocking, or on a goroutine of its own
// (Conn.WriteBytesFieldFrameNoWait).
func (l *Late) AnswerNoWait(resp *pb.HostCallResponse) bool {
	if !l.done.CompareAndSwap(false, true) {
		return false
	}
	l.finish(resp, nil, true)
	return true
}

// finish ends the host call and sends its answer; called once.
func (l *Late) finish(resp *pb.HostCallResponse, err error, noWait bool) {
	e := l.e
	defer l.cancel()
	e.mu.Lock()
	if e.hostCalls[l.id] == l {
		delete(e.hostCalls, l.id) // unless a Cancel did already
	}
	e.mu.Unlock()
	answered := func(error) {
		if e.answered != nil && err == nil {
			e.answered(l.req, resp)
		}
		if l.taken.Load() {
			e.late.Add(-1)
		}
	}
	switch {
	case err != nil:
		_ = e.c.WriteFrame(HostError, l.id, statusOf(err).Proto())
	case !resp.Failed && resp.Error == "" && len(resp.ProtoReflect().GetUnknown()) == 0:
		// Only the result (an envelope, a file): written from where it lies, not copied into a
		// frame buffer first.
		if noWait {
			e.c.WriteBytesFieldFrameNoWait(HostResult, l.id, fieldHostCallResult, resp.Result, answered)
			return
		}
		_ = e.c.WriteBytesFieldFrame(HostResult, l.id, fieldHostCallResult, resp.Result)
	default:
		_ = e.c.WriteFrame(HostResult, l.id, resp)
	}
	answered(nil)
}

// statusOf is the status a handler's error is sent as: a gRPC status as is, any other error as
// FailedPrecondition, nil as OK.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.FailedPrecondition, err.Error())
	}
	return st
}
