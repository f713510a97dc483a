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

	// takeovers counts the takeover readers started (tests see from it how often one had to).
	takeovers atomic.Int64

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
// started and still reads.
//
// read is given handBack: a takeover reader that has just let the request's own goroutine go on
// (it delivered the answer to the request's host call, and that goroutine will read the answers
// to its next ones itself) calls it, and if it reports true, gives the turn back and returns:
// the takeover is armed again, as if the request had just started waiting. Without it a request
// that once went takeoverDelay unread (a stall is enough on a busy machine) would have every
// later answer handed from the takeover reader to its goroutine, a wake-up more each, for the
// rest of its run. handBack reports false once the request has ended: the takeover reader then
// goes on as the connection's reader.
func (t *readTurn) runRequest(run func(), read func(handBack func() bool)) (readOn bool) {
	return t.runRequestArming(func(arm func()) { arm(); run() }, read)
}

// runRequestArming is runRequest for a request that says whether it may run long: the takeover
// is armed only once run calls arm (before it waits for anything). Arming costs a timer, and
// adding a timer wakes another OS thread to watch it (the runtime's netpoller): for a request
// that returns at once (nearly every host call) that wake-up was most of the host's cost.
func (t *readTurn) runRequestArming(run func(arm func()), read func(handBack func() bool)) (readOn bool) {
	t.give()
	var state atomic.Int32 // a takeover state: takeoverArmed to takeoverEnded
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
	for {
		if state.CompareAndSwap(takeoverArmed, takeoverCancelled) {
			return true // (the watcher gives up; a reader that handed back has the turn no more)
		}
		if state.CompareAndSwap(takeoverStarted, takeoverEnded) {
			return false // the takeover reader reads on
		}
	}
}

const (
	takeoverArmed     int32 = iota // watched: a takeover reader starts once the connection goes unread
	takeoverCancelled              // the request ended while armed: its goroutine reads on
	takeoverStarted                // a takeover reader has the turn
	takeoverEnded                  // the request ended while the takeover reader read: it reads on
)

// watch starts read once the connection has gone unread for takeoverDelay, unless the request
// ends first (state no longer takeoverArmed), and again each time the takeover reader hands the
// turn back.
func (t *readTurn) watch(state *atomic.Int32, read func(handBack func() bool)) {
	handBack := func() bool { return state.CompareAndSwap(takeoverStarted, takeoverArmed) }
	for state.Load() == takeoverArmed {
		idle := time.Duration(time.Now().UnixNano() - t.given.Load())
		held := len(t.ch) == 1 // someone reads now
		if !held && idle >= takeoverDelay {
			if !state.CompareAndSwap(takeoverArmed, takeoverStarted) {
				return
			}
			t.takeovers.Add(1)
			read(handBack)
			continue // armed again if it handed the turn back
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
