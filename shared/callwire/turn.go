package callwire

import (
	"sync"
	"sync/atomic"
	"time"
)

// A connection is read by whichever goroutine needs the next frame most, not by a reader
// goroutine that hands each frame to another: every hand-off between goroutines costs a wake-up
// of an OS thread (on a small machine the largest part of a call's time, more than the socket
// round trip itself). So the goroutine waiting for an answer reads it itself when no one else is
// reading, and a request that arrives is run by the goroutine that read it. The right to read
// is the read turn: exactly one goroutine holds it while it reads.
//
// A goroutine that runs a request it read gives the turn up first, and arms a takeover: once the
// connection has gone unread for takeoverDelay while the request still runs (a run loop, a host
// function that waits), a new goroutine takes the turn, so the connection is never left unread
// for long. A quick request (nearly all of them) never starts one, and its goroutine goes back
// to reading; nor does a guest call that keeps making host calls (it reads their answers itself).

// takeoverDelay is how long a request may run on the goroutine that read it before another
// goroutine starts reading the connection in its place.
const takeoverDelay = time.Millisecond

// readTurn is the right to read one connection.
type readTurn struct {
	ch chan struct{} // holds a token while a goroutine has the turn
	// given is when the turn was last given back (UnixNano): the connection was being read until then.
	given atomic.Int64

	endOnce sync.Once
	ended   chan struct{} // closed once the connection has ended: the turn is no longer given
	endErr  error
}

func newReadTurn() *readTurn {
	return &readTurn{ch: make(chan struct{}, 1), ended: make(chan struct{})}
}

// take waits for the turn; false once the connection has ended.
func (t *readTurn) take() bool {
	select {
	case t.ch <- struct{}{}:
		return true
	case <-t.ended:
		return false
	}
}

// tryTake takes the turn if no one has it.
func (t *readTurn) tryTake() bool {
	select {
	case t.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// give gives the turn back.
func (t *readTurn) give() {
	t.given.Store(time.Now().UnixNano())
	<-t.ch
}

// end records why the connection ended, once; it reports whether this was the first end.
func (t *readTurn) end(err error) (first bool) {
	t.endOnce.Do(func() {
		t.endErr = err
		close(t.ended)
		first = true
	})
	return first
}

// runRequest runs one request on the calling goroutine, which holds the turn and gives it up
// for the time. Once the connection has gone unread for takeoverDelay while run runs, read (a
// reader loop that takes the turn) starts on a goroutine of its own. It reports whether the
// caller should take the turn again and go on reading: false when the takeover reader has
// started.
func (t *readTurn) runRequest(run func(), read func()) (readOn bool) {
	return t.runRequestArming(func(arm func()) { arm(); run() }, read)
}

// runRequestArming is runRequest for a request that says whether it may run long: the takeover
// is armed only once run calls arm (before it waits for anything). Arming costs a timer, and
// adding a timer wakes another OS thread to watch it (the runtime's netpoller): for a request
// that returns at once (nearly every host call) that wake-up was most of the host's cost.
func (t *readTurn) runRequestArming(run func(arm func()), read func()) (readOn bool) {
	t.give()
	var state atomic.Int32 // takeoverArmed, takeoverCancelled or takeoverStarted
	var mu sync.Mutex
	var timer *time.Timer
	ran := false
	arm := func() {
		mu.Lock()
		defer mu.Unlock()
		if timer == nil && !ran {
			timer = time.AfterFunc(takeoverDelay, func() { t.watch(&state, read) })
		}
	}
	run(arm)
	mu.Lock()
	ran = true
	armed := timer
	mu.Unlock()
	if armed == nil || armed.Stop() {
		return true
	}
	return state.CompareAndSwap(takeoverArmed, takeoverCancelled)
}

const (
	takeoverArmed int32 = iota
	takeoverCancelled
	takeoverStarted
)

// watch starts read once the connection has gone unread for takeoverDelay, unless the request
// ends first (state no longer takeoverArmed).
func (t *readTurn) watch(state *atomic.Int32, read func()) {
	for state.Load() == takeoverArmed {
		idle := time.Duration(time.Now().UnixNano() - t.given.Load())
		held := len(t.ch) == 1 // someone reads now
		if !held && idle >= takeoverDelay {
			if state.CompareAndSwap(takeoverArmed, takeoverStarted) {
				read()
			}
			return
		}
		wait := takeoverDelay - idle
		switch {
		case held: // (a host call waiting long for its answer: look again less often)
			wait = 10 * takeoverDelay
		case wait <= 0:
			wait = takeoverDelay
		}
		time.Sleep(wait)
	}
}
