package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
)

// A recv that finds nothing queued is parked rather than waited for: no goroutine waits with it.
// The goroutine that read it goes back to reading the shim's connection, and the recv is
// answered (callwire.Late) by whichever comes first:
//
//   - a push to the subscription: the publishing goroutine (another shim's reader) drains the
//     queue, encodes the envelope and writes the answer itself, without blocking
//     (callwire.Late.AnswerNoWait). Handing the message to a goroutine parked in the recv cost a
//     wake-up of another OS thread in every hop (docs/architecture.md, "Publish→recv latency:
//     where a hop's time goes").
//     The subscription's Close answers the same way (an empty envelope, or what is still queued);
//   - the timeout, the shim's Cancel or the connection's end, or the handle being lent to the
//     next instance of a reloading capsule: the recv then goes on as a waiting one
//     (instanceIPC.recv) with the time it has left, on the goroutine of that event, so every
//     case behaves exactly as a recv that waited from the start.
//
// Whichever comes first claims the recv (parkedRecv.claim) and stops the others: it is answered
// once.

// recvOrPark returns what is queued on handle h (got), or parks the recv (parked), or neither:
// then the caller waits (a lent handle, a host call that cannot be answered later).
func (s *hostServices) recvOrPark(ctx context.Context, h uint64, timeout time.Duration, into []bus.Message) (env bus.Envelope, got, parked bool) {
	e := s.inst.ipc.inUse(h)
	if e == nil || timeout <= 0 {
		return bus.Envelope{}, false, false
	}
	if env, ok := e.sub.TryRecvInto(envelopeBytes, into); ok {
		return env, true, false
	}
	l := callwire.LateAnswer(ctx)
	if l == nil {
		return bus.Envelope{}, false, false
	}
	p := &parkedRecv{s: s, l: l, h: h, e: e, ctx: ctx, deadline: time.Now().Add(timeout), into: into}
	p.onReady, p.onEnd = p.ready, p.giveUp
	p.mu.Lock() // claim waits until every way of ending the recv is set up
	p.timer = time.AfterFunc(timeout, p.giveUp)
	l.OnCancel(p.giveUp)
	e.onDetach.Store(&p.onEnd)
	if e.detach.Err() != nil && e.onDetach.CompareAndSwap(&p.onEnd, nil) {
		go p.giveUp() // lent before onDetach was set (lend runs what it finds there)
	}
	e.sub.OnReady(&p.onReady)
	p.mu.Unlock()
	if e.sub.Ready() && e.sub.CancelOnReady(&p.onReady) {
		p.ready() // a push came between the drain above and OnReady
	}
	return bus.Envelope{}, false, true
}

// recvOpName is the name recv's answers are checked under (hostCallResponse).
var recvOpName = func() string {
	f, _ := shared.HostCallOf(pb.HostOp_HOST_OP_IPC_RECV)
	return f.Name
}()

// parkedRecv is a recv waiting for its subscription, with no goroutine of its own.
type parkedRecv struct {
	s        *hostServices
	l        *callwire.Late
	h        uint64
	e        *ipcSub
	ctx      context.Context
	deadline time.Time
	into     []bus.Message

	onReady func() // ready, registered with the subscription (bus.Subscription.OnReady)
	onEnd   func() // giveUp, registered as the subscription's onDetach
	claimed atomic.Bool
	mu      sync.Mutex // held while the ways of ending the recv are set up
	timer   *time.Timer
}

// claim reports whether the caller is the one to answer the recv, and if so stops the other
// ways of answering it.
func (p *parkedRecv) claim() bool {
	if !p.claimed.CompareAndSwap(false, true) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.e.sub.CancelOnReady(&p.onReady)
	p.timer.Stop()
	p.l.OnCancel(nil)
	p.e.onDetach.CompareAndSwap(&p.onEnd, nil)
	return true
}

// ready answers the recv with what was just pushed, on the pushing goroutine (which must not
// wait on this shim), or with an empty envelope when the subscription was closed. A handle lent
// meanwhile, or a queue another recv emptied first, goes on as a waiting recv.
func (p *parkedRecv) ready() {
	if !p.claim() {
		return
	}
	env, ok := bus.Envelope{}, false
	if p.e.detach.Err() == nil {
		env, ok = p.e.sub.TryRecvInto(envelopeBytes, p.into)
	}
	if !ok && (!p.e.sub.Closed() || p.e.detach.Err() != nil) {
		go p.wait()
		return
	}
	resp, err := hostCallResponse(recvOpName, p.s.envelopeJSON(env), nil)
	if err != nil {
		go p.l.Answer(nil, err)
		return
	}
	p.l.AnswerNoWait(resp)
}

// giveUp is the timeout's, the cancel's (callwire.Late.OnCancel) and the detach's way to end the
// recv: it goes on as a waiting recv with the time it has left (none, for the timeout).
func (p *parkedRecv) giveUp() {
	if p.claim() {
		p.wait()
	}
}

// wait answers the recv as a recv that waited from the start (hostServices.recvWait) would.
func (p *parkedRecv) wait() {
	result, err := p.s.recvWait(p.ctx, p.h, time.Until(p.deadline), p.into)
	var resp *pb.HostCallResponse
	if err == nil {
		resp, err = hostCallResponse(recvOpName, result, nil)
	}
	p.l.Answer(resp, err)
}

// inUse returns handle h's subscription if this instance uses it now (not lent), nil otherwise.
func (s *instanceIPC) inUse(h uint64) *ipcSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.subs[h]
	if !ok || e.lentTo != nil {
		return nil
	}
	return e
}
