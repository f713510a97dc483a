package httpgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Streams (astrid_http_stream_start/read/close): a request whose body the capsule reads in
// chunks. A stream is opened under the same rules as Do (prepare, the guarded dialer, the
// redirect check) and belongs to the Client that opened it: its handle means nothing to another
// client, so another capsule cannot read or close it.

var (
	// errStreamClosed is a stream's cause when CloseStream closed it.
	errStreamClosed = errors.New("the HTTP stream was closed")
	// errConnectLimit is an opening stream's cause when StreamConnectTimeout passed.
	errConnectLimit = errors.New("the HTTP stream's connect time limit passed")
)

// StreamHead is what OpenStream returns: the stream's handle and the response's status and
// headers (as in Response).
type StreamHead struct {
	// Handle names the stream in ReadStream and CloseStream. A client's handles start at 1 and
	// are never reused.
	Handle  uint64
	Status  int
	Headers map[string]string
}

// stream is one open streaming response.
type stream struct {
	target string // the URL's host[:port], for messages
	ctx    context.Context
	cancel context.CancelCauseFunc // ends the request, and so a read in flight
	// unhook removes the hook that cancels the stream when the client closes.
	unhook func() bool
	body   io.ReadCloser

	closed    chan struct{} // closed by close
	closeOnce sync.Once

	// turn lets one read at a time at the fields below.
	turn    chan struct{}
	reading bool       // a reader goroutine is in body.Read; its chunk arrives on results
	results chan chunk // capacity 1
	eof     bool       // the body has ended; every further read is empty
	err     error      // the body failed; every further read fails with it
}

// chunk is what one body.Read returned.
type chunk struct {
	data []byte
	err  error
}

// OpenStream sends r and returns when the response's headers have arrived (within
// StreamConnectTimeout and ctx), leaving the body open for ReadStream. The client holds at most
// MaxStreams open streams (counting those being opened); another fails with ErrStreamLimit
// before anything is sent. Errors are those of Do.
func (c *Client) OpenStream(ctx context.Context, r Request) (*StreamHead, error) {
	p, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if n := len(c.streams) + c.opening; n >= MaxStreams {
		c.mu.Unlock()
		return nil, newError(ErrStreamLimit, fmt.Sprintf("HTTP stream cap reached (%d/%d)", n, MaxStreams))
	}
	c.opening++
	c.inflight.Add(1)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.opening--
		c.mu.Unlock()
		c.inflight.Done()
	}()

	// The stream's request outlives this call, so its context is its own: the client's Close
	// ends it, and while it opens, so do ctx and the connect time limit.
	sctx, cancel := context.WithCancelCause(context.Background())
	unhook := context.AfterFunc(c.stopped, func() { cancel(errClosed) })
	stopCaller := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	timer := time.AfterFunc(c.connectTimeout, func() { cancel(errConnectLimit) })
	resp, err := c.send(sctx, p)
	stopCaller()
	timer.Stop()
	if err == nil && sctx.Err() != nil {
		// ctx or the time limit ended the stream just as its headers arrived.
		resp.Body.Close()
		err = classify(sctx, p.url.Host, sctx.Err())
	}
	if err != nil {
		unhook()
		cancel(nil)
		return nil, err
	}
	s := &stream{
		target: p.url.Host, ctx: sctx, cancel: cancel, unhook: unhook, body: resp.Body,
		closed: make(chan struct{}), turn: make(chan struct{}, 1), results: make(chan chunk, 1),
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.close(errClosed)
		return nil, errClosed
	}
	c.lastStream++
	id := c.lastStream
	c.streams[id] = s
	c.mu.Unlock()
	return &StreamHead{Handle: id, Status: resp.StatusCode, Headers: responseHeaders(resp.Header)}, nil
}

// ReadStream returns the next chunk of the body of the stream handle: the bytes that have
// arrived, at most MaxStreamChunkBytes, as soon as there are any. It returns an empty chunk at
// the end of the body, when ctx ends (the capsule's call is interrupted or it unloads: a chunk
// being read then is kept for the next read), when the stream is closed meanwhile and once the
// client is closed. A chunk that does not arrive within StreamReadTimeout fails with
// ErrTimeout (the stream stays open); a handle the client does not hold fails with
// ErrUnknownStream; a failed body fails this and every later read.
func (c *Client) ReadStream(ctx context.Context, handle uint64) ([]byte, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil
	}
	s := c.streams[handle]
	if s == nil {
		c.mu.Unlock()
		return nil, newError(ErrUnknownStream, "HTTP stream handle not found")
	}
	// Counted in flight, so Close waits for this read (which its closing of s ends at once)
	// before it waits for the reader goroutines.
	c.inflight.Add(1)
	c.mu.Unlock()
	defer c.inflight.Done()
	return s.read(ctx, &c.readers, c.readTimeout)
}

// CloseStream closes the stream handle and releases its connection; a read waiting on it
// returns empty. Closing a handle that is not open (closed before, or never opened) does nothing.
func (c *Client) CloseStream(handle uint64) {
	c.mu.Lock()
	s := c.streams[handle]
	delete(c.streams, handle)
	c.mu.Unlock()
	if s != nil {
		s.close(errStreamClosed)
	}
}

// close ends the stream's request (a body.Read in flight returns) and closes its body.
func (s *stream) close(cause error) {
	s.closeOnce.Do(func() {
		s.cancel(cause)
		close(s.closed)
		s.unhook()
		s.body.Close()
	})
}

// read is ReadStream for s; readers counts the goroutine it starts.
func (s *stream) read(ctx context.Context, readers *sync.WaitGroup, timeout time.Duration) ([]byte, error) {
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, nil
	case <-s.closed:
		return nil, nil
	}
	defer func() { <-s.turn }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		switch {
		case s.err != nil:
			return nil, s.err
		case s.eof:
			return nil, nil
		case !s.reading:
			// body.Read cannot be interrupted but by ending the request, and a read given up
			// for ctx must not lose its chunk: a goroutine reads, and its chunk waits in
			// results for whichever read comes next.
			s.reading = true
			readers.Add(1)
			go s.readChunk(readers)
		}
		select {
		case ch := <-s.results:
			s.reading = false
			switch {
			case ch.err == nil:
			case errors.Is(ch.err, io.EOF), s.ctx.Err() != nil && s.wasClosed():
				s.eof = true
			default:
				s.err = classify(s.ctx, s.target, ch.err)
			}
			if len(ch.data) > 0 {
				return ch.data, nil
			}
		case <-ctx.Done():
			return nil, nil
		case <-s.closed:
			return nil, nil
		case <-timer.C:
			return nil, newError(ErrTimeout, fmt.Sprintf("HTTP stream read timed out after %gs", timeout.Seconds()))
		}
	}
}

// readChunk reads the body once and leaves the result in s.results.
func (s *stream) readChunk(readers *sync.WaitGroup) {
	defer readers.Done()
	buf := make([]byte, MaxStreamChunkBytes)
	n, err := s.body.Read(buf)
	s.results <- chunk{data: buf[:n], err: err}
}

// wasClosed reports whether the stream ended because it (or its client) was closed, rather
// than by a failure.
func (s *stream) wasClosed() bool {
	cause := context.Cause(s.ctx)
	return errors.Is(cause, errStreamClosed) || errors.Is(cause, errClosed)
}
