package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/astrid-go/astrid/shared/logtext"
)

// Limits of streams.
const (
	// MaxStreams bounds the streams served at once (`astrid-host tail`, `call --running`): fewer
	// than MaxConns, so that open streams never keep the other commands out. One more is refused
	// at once with an error saying so.
	MaxStreams = 8
	// StreamWriteTimeout bounds writing one frame of a stream: a client that reads nothing for
	// this long is cut off (what it has not read waits in the method's own bounded queue
	// meanwhile, so the host never waits for it). A stream with nothing to send is never cut.
	StreamWriteTimeout = time.Minute
	// StreamEndTimeout bounds writing a stream's last frame when the server closes.
	StreamEndTimeout = time.Second
)

// ErrStopping is the error of a stream the server ended because it is closing: the host is
// shutting down. It is also the cause (context.Cause) of the context of every request then, so
// that a Stream can tell the host stopping from its client leaving (see Stopping).
var ErrStopping = errors.New("the host is shutting down")

// Stopping reports whether ctx, a request's context, ended because the server is closing: a
// Stream may then send what it still holds (each frame is given StreamEndTimeout) before it
// returns.
func Stopping(ctx context.Context) bool { return errors.Is(context.Cause(ctx), ErrStopping) }

// Stream is a result a Handler returns to answer with a sequence of frames instead of one
// result: the server answers the request {"ok": true}, then runs the Stream, which calls send
// with each value to write as one more frame {"ok": true, "result": value}, until it returns;
// then the server writes a last frame, {"ok": true, "end": true} when it returned nil,
// {"ok": false, "end": true, "error": ...} otherwise. ctx ends when the client closes the
// connection and when the server closes (the last frame's error is then ErrStopping's text);
// the Stream must then return promptly. send fails once the client is gone, or when a frame
// cannot be written within StreamWriteTimeout. send may be called from several goroutines.
//
// The server calls every Stream a Handler returns exactly once, also when it refuses it (more
// than MaxStreams at once), with ctx already ended: so a Stream may own what its Handler set up
// (a subscription) and release it when it returns.
type Stream func(ctx context.Context, send func(v any) error) error

// serveStream runs a Handler's Stream on conn, as Stream describes.
func (s *Server) serveStream(ctx context.Context, conn net.Conn, method string, st Stream) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		done, cancel := context.WithCancel(ctx)
		cancel()
		st(done, func(any) error { return context.Canceled })
		conn.SetWriteDeadline(time.Now().Add(IOTimeout))
		WriteFrame(conn, Response{Error: errBusyStreams.Error()})
		return
	}
	s.mu.Lock()
	s.conns[conn] = true
	s.mu.Unlock()
	var mu sync.Mutex // one frame at a time
	write := func(resp Response, timeout time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		if s.ctx.Err() != nil {
			timeout = min(timeout, StreamEndTimeout) // closing: no client holds it up for long
		}
		conn.SetWriteDeadline(time.Now().Add(timeout))
		return WriteFrame(conn, resp)
	}
	if err := write(Response{OK: true}, IOTimeout); err != nil {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		st(ctx, func(any) error { return err })
		return
	}
	err := st(ctx, func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return write(Response{OK: true, Result: b}, StreamWriteTimeout)
	})
	last := Response{OK: err == nil, End: true}
	switch {
	case Stopping(ctx):
		last = Response{End: true, Error: ErrStopping.Error()}
	case ctx.Err() != nil:
		return // the client is gone
	case err != nil:
		last.Error = err.Error()
	}
	if werr := write(last, StreamEndTimeout); werr != nil {
		s.log.Debug("control socket: cannot end a stream", "method", logtext.Escape(method), "error", werr)
	}
}

// errBusyStreams refuses a stream beyond MaxStreams.
var errBusyStreams = fmt.Errorf("busy: %d streams (tail, call --running) are open, the most at once; end one and try again", MaxStreams)

// watchPeer cancels the request when its client closes the connection or sends anything after
// its request (the protocol has the client send nothing more). The returned function stops
// watching and waits for the watcher.
func watchPeer(conn net.Conn, cancel context.CancelFunc) (stop func()) {
	conn.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		conn.Read(b[:])
		cancel()
	}()
	return func() {
		conn.SetReadDeadline(time.Now())
		<-done
	}
}
