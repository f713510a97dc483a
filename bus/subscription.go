package bus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrClosed is returned by Recv when the subscription is closed while it
// waits, or was closed before and has nothing queued.
var ErrClosed = errors.New("subscription closed")

// Subscription is one pattern subscribed on a Bus, with its own bounded
// queue. Publish fills the queue; Poll and Recv drain it. All methods are
// safe for concurrent use.
//
// The queue holds at most Options.QueueMessages messages and
// Options.QueueBytes payload bytes. When a new message would exceed either
// limit, the oldest messages are evicted and counted as lagged; a single
// message larger than QueueBytes is still queued, alone. Draining never
// discards a message.
type Subscription struct {
	bus     *Bus
	pattern string
	segs    []string // pattern's segments; nil when it can match nothing (not indexed)
	shared  bool     // made by SubscribeShared (guarded by bus.mu)

	notify    chan struct{} // one token: "the queue may have messages"
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	maxMsgs  int
	maxBytes int

	// onReady, when set (OnReady), is taken and called once by the next push, lag or Close.
	onReady atomic.Pointer[func()]

	// waitHook, when set (by tests, before Recv is called), runs each time
	// Recv is about to wait, so tests can publish or cancel at that point
	// without sleeping.
	waitHook func()

	mu         sync.Mutex // guards everything below
	q          queue
	matched    uint64 // messages published that matched
	delivered  uint64 // messages returned in envelopes
	lagged     uint64 // messages evicted, in total
	lagPending uint64 // messages evicted since the last envelope
}

// Stats are the counters of a subscription. At any moment
// Delivered + Lagged + Queued == Matched.
type Stats struct {
	Matched     uint64 // messages published that matched the pattern
	Delivered   uint64 // messages returned by Poll and Recv
	Lagged      uint64 // messages evicted from the full queue, in total
	Queued      uint64 // messages waiting now
	QueuedBytes int    // payload bytes waiting now
}

// Envelope is what one Poll or Recv returns: the messages drained, in
// order, and the number of messages evicted since the previous envelope.
// Its JSON is upstream's {"messages":[...],"dropped":0,"lagged":n}.
type Envelope struct {
	Messages []Message
	// Dropped is always 0. Upstream lost the message that did not fit an
	// envelope and counted it here; this bus leaves it queued instead. The
	// field stays for compatibility of the JSON.
	Dropped uint64
	// Lagged is the number of messages evicted from this subscription's
	// queue since the previous envelope (read-and-reset).
	Lagged uint64
}

// Pattern returns the pattern the subscription was made with.
func (s *Subscription) Pattern() string { return s.pattern }

// push appends m to the queue (pushRun of one message).
func (s *Subscription) push(m *Message) { s.pushRun(unsafe.Slice(m, 1)) }

// pushRun appends messages to the queue, in order, under one lock, evicting the oldest while a
// limit would be exceeded, then wakes a waiting Recv. It is called by Publish with the bus's
// read lock held.
func (s *Subscription) pushRun(ms []Message) {
	s.mu.Lock()
	for i := range ms {
		m := &ms[i]
		s.matched++
		for s.q.n > 0 && (s.q.n >= s.maxMsgs || s.q.bytes+size(m) > s.maxBytes) {
			s.q.pop()
			s.lagged++
			s.lagPending++
			s.bus.totals.lagged.Add(1)
		}
		s.q.push(m, s.maxMsgs)
	}
	s.mu.Unlock()
	s.wake()
}

// addLag counts n messages that matched but never reached this host as matched and lagged.
func (s *Subscription) addLag(n uint64) {
	s.mu.Lock()
	s.matched += n
	s.lagged += n
	s.lagPending += n
	s.mu.Unlock()
	s.bus.totals.lagged.Add(n)
	s.wake()
}

// wake leaves a token in notify unless one is already there, and calls the function OnReady
// registered, if any. It never blocks.
func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
	s.fireReady()
}

// fireReady calls the function OnReady registered, if any, once.
func (s *Subscription) fireReady() {
	if f := s.onReady.Swap(nil); f != nil {
		(*f)()
	}
}

// OnReady registers f to be called once, on the goroutine that makes the subscription ready,
// right after it does: the next push of messages (Publish: with the bus's read lock held, so f
// must not subscribe or close), messages counted as lagged, or Close. It replaces a function
// registered before and not called yet. A caller that waits for a message without parking a
// goroutine (the host's recv that the publisher answers) registers f and then checks Ready:
// a push between its last drain and the registration is then not missed. f is called after the
// queue's lock is let go: it may drain.
func (s *Subscription) OnReady(f *func()) { s.onReady.Store(f) }

// CancelOnReady takes back f if it is still registered and not called yet; it reports whether
// it did (false: f has been or is being called).
func (s *Subscription) CancelOnReady(f *func()) bool { return s.onReady.CompareAndSwap(f, nil) }

// Closed reports whether Close has been called.
func (s *Subscription) Closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Ready reports whether a Recv would return at once: messages are queued, evictions are
// pending, or the subscription is closed.
func (s *Subscription) Ready() bool {
	select {
	case <-s.done:
		return true
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.n > 0 || s.lagPending > 0
}

// Poll drains queued messages into an envelope without blocking, up to
// maxBytes of payload (a message counts len(its Payload)). A message that
// does not fit stays queued, with every message after it, for the next call;
// nothing is discarded. The first message is always taken, however large,
// so an envelope is never empty while messages wait. Lagged is the number of
// messages evicted since the previous envelope.
func (s *Subscription) Poll(maxBytes int) Envelope {
	return s.PollInto(maxBytes, nil)
}

// PollInto is Poll with the envelope's messages in into's array when it has room for them (a
// new one otherwise): a caller that encodes each envelope and then drops it can reuse one slice
// rather than allocate one per envelope. into is the caller's again once it is done with the
// envelope.
func (s *Subscription) PollInto(maxBytes int, into []Message) Envelope {
	env, _ := s.drain(maxBytes, true, into)
	return env
}

// drain takes messages as Poll describes. When the queue is empty and
// always is false it returns false and leaves the lagged count for a later
// envelope, unless messages lost on their way from another host are pending (AddLag); otherwise
// it returns an envelope (and resets the count).
func (s *Subscription) drain(maxBytes int, always bool, into []Message) (Envelope, bool) {
	s.mu.Lock()
	if s.q.n == 0 && s.lagPending == 0 && !always {
		s.mu.Unlock()
		return Envelope{}, false
	}
	n := s.q.fit(maxBytes)
	var msgs []Message
	if n > 0 {
		if cap(into) >= n {
			msgs = into[:n]
		} else {
			msgs = make([]Message, n)
		}
		s.q.take(msgs)
		s.q.drained(n)
	}
	s.delivered += uint64(n)
	s.bus.totals.delivered.Add(uint64(n))
	env := Envelope{Messages: msgs, Lagged: s.lagPending}
	s.lagPending = 0
	more := s.q.n > 0
	s.mu.Unlock()
	if more {
		// Another Recv may be waiting on the same subscription; let it see
		// what this envelope had no room for.
		s.wake()
	}
	return env, true
}

// TryRecv is Recv that does not wait: when a message is queued, or
// messages were evicted since the last envelope, it drains like Poll and
// reports true; otherwise it returns false at once and changes nothing. It
// lets a caller skip setting up a wait (a timer, a context) when Recv would
// return at once.
func (s *Subscription) TryRecv(maxBytes int) (Envelope, bool) {
	return s.TryRecvInto(maxBytes, nil)
}

// TryRecvInto is TryRecv with the messages in into as PollInto puts them.
func (s *Subscription) TryRecvInto(maxBytes int, into []Message) (Envelope, bool) {
	return s.drain(maxBytes, false, into)
}

// takeLagged returns the evictions since the last envelope and resets the
// count.
func (s *Subscription) takeLagged() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.lagPending
	s.lagPending = 0
	return n
}

// Recv waits until at least one message is queued, then drains like Poll.
// A message already queued is returned at once, even if ctx is done. When
// ctx is done first, Recv returns an empty envelope (with the lagged count)
// and ctx.Err(); when the subscription is closed first, it returns the same
// with ErrClosed. Messages that arrive afterwards stay queued.
//
// Recv waits on a channel that Publish signals; it never polls or sleeps.
func (s *Subscription) Recv(ctx context.Context, maxBytes int) (Envelope, error) {
	return s.RecvInto(ctx, maxBytes, nil)
}

// RecvInto is Recv with the messages in into as PollInto puts them.
func (s *Subscription) RecvInto(ctx context.Context, maxBytes int, into []Message) (Envelope, error) {
	for {
		if env, ok := s.drain(maxBytes, false, into); ok {
			return env, nil
		}
		if s.waitHook != nil {
			s.waitHook()
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Envelope{Lagged: s.takeLagged()}, ctx.Err()
		case <-s.done:
			if env, ok := s.drain(maxBytes, false, into); ok {
				return env, nil
			}
			return Envelope{Lagged: s.takeLagged()}, ErrClosed
		}
	}
}

// Close removes the subscription from its bus: no message is queued after
// Close returns, and a Recv waiting on it returns ErrClosed. Messages already
// queued can still be polled. Close is idempotent.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.bus.unshare(s)
		s.bus.remove(s)
		close(s.done)
		s.fireReady()
	})
}

// Stats returns the subscription's counters, read together.
func (s *Subscription) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Matched:     s.matched,
		Delivered:   s.delivered,
		Lagged:      s.lagged,
		Queued:      uint64(s.q.n),
		QueuedBytes: s.q.bytes,
	}
}
