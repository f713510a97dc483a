package callwire

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/astrid-go/astrid/shared/pb"
)

// Who reads the host's end. An export call's answer is read by the Invoke waiting for it when
// no other goroutine has the read turn: the netpoller then wakes that goroutine itself, where a
// reader goroutine handing the answer on would make it runnable (the runtime wakes another OS
// thread for it, `wakep`: on a 2-core machine that wake-up cost as much again as the socket
// round trip). Between calls the connection must still be read (a shim's death, a violation, a
// frame sent while no call runs), so Serve's goroutine watches it: once it has gone unread for
// takeoverDelay, Serve's goroutine reads, and gives the turn back after it has handed a call's
// answer on, so the next call, if it follows soon, reads its own again.

// always is a stop for readHeld that always lets the reader give the turn back.
func always() bool { return true }

// readHeld reads frames with the read turn held (the caller took it), running each host call
// it reads itself, until:
//   - the connection ends (the turn stays held: no one reads after);
//   - own, if not nil (the channel of the calling Invoke's answer), holds the answer, or ctx
//     ends: the turn is given back;
//   - a host call it ran gave the turn to another reader (a takeover reader, or an Invoke that
//     took the free turn meanwhile). An Invoke whose context can end runs only the host calls
//     that return at once (HandleQuick), any other on a goroutine of its own;
//   - stop, if not nil, reports true after the reader has handed a call's answer to the Invoke
//     waiting for it and nothing more is buffered: the turn is given back.
func (e *HostEnd) readHeld(ctx context.Context, own chan answer[*pb.InvokeResponse], stop func() bool) {
	reads := e.c.readsUnder(ctx)
	defer reads.close()
	for {
		if own != nil && len(own) > 0 {
			e.giveTurn()
			return
		}
		if !e.c.Buffered() && e.late.Load() == 0 {
			// About to wait for the shim: what was deferred goes out first (with the answer,
			// when a host call waits to be answered later).
			_ = e.c.FlushDeferred()
		}
		kind, id, body, err := reads.ReadFrame(MaxHostFrameBytes)
		switch {
		case errors.Is(err, errInterrupted):
			e.giveTurn() // the part read so far is kept for the next reader
			return
		case errors.Is(err, ErrTooLarge):
			err = e.violation(err)
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			err = io.EOF
		}
		var run func(arm func())
		quick, delivered := false, false
		if err == nil {
			run, quick, delivered, err = e.handle(kind, id, body)
		}
		if err != nil {
			e.end(err)
			return
		}
		if run != nil && own != nil && ctx.Done() != nil && !quick {
			// A host call that may wait: on a goroutine of its own, so that this Invoke still
			// returns when its context ends. It reads on meanwhile (no takeover needed).
			go run(func() {})
			continue
		}
		if run != nil {
			// While it runs, an Invoke may take the free turn; then that one reads on.
			if !e.turn.runRequestArming(run, e.takeOver) || !e.turn.tryTake() {
				return
			}
			continue
		}
		if delivered && len(own) == 0 {
			e.handedOff.Add(1)
		}
		if delivered && stop != nil && !e.c.Buffered() && stop() {
			e.giveTurn()
			return
		}
	}
}

// giveTurn gives the read turn back, sending first what was deferred unless a host call waits to
// be answered later (its answer takes it).
func (e *HostEnd) giveTurn() {
	if e.late.Load() == 0 {
		_ = e.c.FlushDeferred()
	}
	e.turn.give()
}

// takeOver is the read of a takeover reader (readTurn.runRequestArming): it reads only if no
// Invoke reads already, and gives the turn back once it has handed a call's answer on (handBack
// arms the takeover again if the host call still runs).
func (e *HostEnd) takeOver(handBack func() bool) {
	if !e.turn.tryTake() {
		return // an Invoke reads
	}
	e.readHeld(context.Background(), nil, func() bool {
		handBack()
		return true
	})
}

// watch is Serve's goroutine between its turns: it reads (readHeld) whenever the connection has
// gone unread for takeoverDelay, until the connection ends. While an Invoke is in progress it
// waits ten times as long: the Invoke takes the turn whenever it is free (it reads, or waits for
// the turn or its answer), and Serve's goroutine looking as often as between calls would cost a
// wake-up each time; it reads then only if the connection has still gone unread (an Invoke whose
// write waits for the shim to read, a host call that runs long).
func (e *HostEnd) watch() {
	timer := time.NewTimer(takeoverDelay)
	defer timer.Stop()
	for {
		idle := time.Duration(time.Now().UnixNano() - e.turn.given.Load())
		held := len(e.turn.ch) == 1
		delay := takeoverDelay
		if e.invoking.Load() > 0 {
			delay = 10 * takeoverDelay
		}
		if !held && idle >= delay && e.turn.tryTake() {
			e.serveTurns.Add(1)
			e.readHeld(context.Background(), nil, always)
			continue
		}
		wait := delay - idle
		switch {
		case held: // (someone reads: look again less often)
			wait = 10 * takeoverDelay
		case wait <= 0:
			wait = takeoverDelay
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-e.turn.ended:
			return
		}
	}
}
