package host

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus"
)

// The hand-over of a capsule's bus subscriptions from one instance to the next when the capsule
// is reloaded (Host.Reload). docs/architecture.md#hot-reload states the guarantee:
//
//   - While the next instance loads, its IPC state has the previous instance's as its lender.
//     When it subscribes to a pattern (its [[interceptor]] subscriptions, made for a run-loop
//     capsule at load, or the guest's own) that the previous instance holds, it takes over that
//     bus.Subscription, with its queue and counters, instead of making a fresh one. So a message
//     the capsule's subscription matched is queued once, on the one queue, whichever instance
//     drains it.
//   - The lending instance's handle is detached at once: a recv waiting on it returns (with what
//     it had already drained, if anything), and from then on its recv and poll get nothing. The
//     first time its guest asks again on a detached handle it has finished with what it received
//     (a guest handles one envelope at a time): drained is closed, and Reload stops it.
//   - Until the reload commits, what was taken over is only borrowed: if the next instance fails
//     (its load, its ready signal, a crash), closing its IPC state gives each subscription back
//     to the lender's handle and the previous instance goes on receiving where it stopped.

// ipcSub is one of an instance's subscriptions (a handle's).
type ipcSub struct {
	sub *bus.Subscription
	// detach ends when the subscription is lent to the next instance: a recv waiting on it
	// returns. back is closed when a lent subscription is given back (the reload failed).
	detach context.Context
	cut    context.CancelFunc
	back   chan struct{}
	// onDetach is what a recv parked on the subscription (parkedRecv) runs when it is lent, set
	// and taken back with each park: cheaper in every hop than context.AfterFunc on detach. A
	// guest makes one host call at a time, so one slot is enough; a recv the shim cancelled that
	// has not ended yet and is displaced here still ends through its cancel.
	onDetach atomic.Pointer[func()]
	// lentTo is the next instance's IPC state, which holds the subscription now (the lender's
	// side of a hand-over); nil when this instance uses it.
	lentTo *instanceIPC
	// from and fromHandle are the lender and its handle (the borrower's side, until the reload
	// commits); from is nil for a subscription of this instance's own.
	from       *instanceIPC
	fromHandle uint64
}

// newSub subscribes pattern for s, or takes over the lender's subscription to the same pattern
// (during a reload). A guest's own subscription is shared with other hosts (bus.SubscribeShared,
// which the link may refuse); an interceptor's stays on this host. Called with s.mu held.
func (s *instanceIPC) newSub(b *bus.Bus, pattern string, shared bool) (*ipcSub, error) {
	if s.lender != nil {
		if h, sub := s.lender.lend(s, pattern); sub != nil {
			e := attached(sub)
			e.from, e.fromHandle = s.lender, h
			return e, nil
		}
	}
	if !shared {
		return attached(b.Subscribe(pattern)), nil
	}
	sub, err := b.SubscribeShared(pattern)
	if err != nil {
		return nil, err
	}
	return attached(sub), nil
}

// attached is the entry of a subscription its instance uses.
func attached(sub *bus.Subscription) *ipcSub {
	e := &ipcSub{sub: sub}
	e.detach, e.cut = context.WithCancel(context.Background())
	return e
}

// lend detaches the first subscription to pattern (in handle order) that s has not lent yet and
// returns it with its handle, or 0, nil when s has none or is closed. The borrower's lock is
// held (the lock order is borrower, then lender).
func (s *instanceIPC) lend(to *instanceIPC, pattern string) (uint64, *bus.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil
	}
	handles := make([]uint64, 0, len(s.subs))
	for h := range s.subs {
		handles = append(handles, h)
	}
	slices.Sort(handles)
	for _, h := range handles {
		e := s.subs[h]
		if e.lentTo == nil && e.sub.Pattern() == pattern {
			e.lentTo = to
			e.back = make(chan struct{})
			e.cut()
			if f := e.onDetach.Swap(nil); f != nil {
				go (*f)()
			}
			return h, e.sub
		}
	}
	return 0, nil
}

// release lets go of one of s's subscriptions (unsubscribe, close): one borrowed goes back to
// its lender, one lent stays with its borrower, any other is closed. Called with s.mu held.
func (s *instanceIPC) release(e *ipcSub) {
	switch {
	case e.from != nil:
		e.from.giveBack(e.fromHandle, e.sub)
	case e.lentTo != nil:
	default:
		e.sub.Close()
	}
}

// giveBack returns a lent subscription to handle h (the reload failed): a recv waiting on the
// detached handle goes on on the subscription. A lender that has closed meanwhile (it crashed)
// closes it. The borrower's lock is held.
func (s *instanceIPC) giveBack(h uint64, sub *bus.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.subs[h]
	if s.closed || !ok || e.sub != sub {
		sub.Close()
		return
	}
	s.subs[h] = attached(sub)
	close(e.back)
	if s.drainedClosed {
		// A later reload waits for the guest to come back anew.
		s.drained, s.drainedClosed = make(chan struct{}), false
	}
}

// commit makes what s borrowed its own (the reload has replaced the lender): it reports false,
// changing nothing, when s has closed meanwhile (the new instance crashed, and gave everything
// back). The lender's entries stay detached: its recv waits until it is stopped, and its close
// leaves them alone.
func (s *instanceIPC) commit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.lender = nil
	for _, e := range s.subs {
		e.from, e.fromHandle = nil, 0
	}
	return true
}

// lentAny reports whether s has lent any subscription.
func (s *instanceIPC) lentAny() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.subs {
		if e.lentTo != nil {
			return true
		}
	}
	return false
}

// cameBack records that the guest asked again on a detached handle.
func (s *instanceIPC) cameBack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.drainedClosed {
		close(s.drained)
		s.drainedClosed = true
	}
}

// drainedChan is closed once the guest has asked again on a detached handle.
func (s *instanceIPC) drainedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drained
}

// poll drains handle h without waiting, into into's array if it has room (bus.Subscription.PollInto);
// a detached handle gives an empty envelope.
func (s *instanceIPC) poll(h uint64, maxBytes int, into []bus.Message) (bus.Envelope, error) {
	e, err := s.get(h)
	if err != nil {
		return bus.Envelope{}, err
	}
	if e.lentTo != nil {
		s.cameBack()
		return bus.Envelope{}, nil
	}
	return e.sub.PollInto(maxBytes, into), nil
}

// recv waits on handle h until a message is queued, or ctx ends, or timeout passes (then the
// envelope is empty). On a detached handle it waits for ctx, or for the subscription to come back
// (the reload failed) and then goes on waiting on it; a recv waiting when its handle is detached
// returns what it has. What is already queued is returned without setting up the wait (a timer
// and contexts: most of a recv's cost when the guest is behind the publishers). The messages go
// into into's array if it has room (bus.Subscription.RecvInto).
func (s *instanceIPC) recv(ctx context.Context, h uint64, maxBytes int, timeout time.Duration, into []bus.Message) (bus.Envelope, error) {
	s.mu.Lock()
	e, ok := s.subs[h]
	inUse := ok && e.lentTo == nil
	s.mu.Unlock()
	if inUse {
		if env, ok := e.sub.TryRecvInto(maxBytes, into); ok {
			return env, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s.mu.Lock()
		e, ok := s.subs[h]
		var lent bool
		var back chan struct{}
		if ok {
			lent, back = e.lentTo != nil, e.back
		}
		s.mu.Unlock()
		if !ok {
			return bus.Envelope{}, errUnloading
		}
		if lent {
			s.cameBack()
			select {
			case <-ctx.Done():
				return bus.Envelope{}, nil
			case <-back:
				continue // given back, or forgotten: look again
			}
		}
		rctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(e.detach, cancel)
		env, _ := e.sub.RecvInto(rctx, maxBytes, into)
		stop()
		cancel()
		if len(env.Messages) > 0 || env.Lagged > 0 || ctx.Err() != nil || e.detach.Err() == nil {
			return env, nil
		}
		// Detached while it waited, with nothing drained: wait as a detached handle does.
	}
}
