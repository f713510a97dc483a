package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamServer serves "count" (a stream of params.N numbers, then the end) and "follow" (a
// stream that sends what the test puts on next until the client or the server ends it, and
// reports how it ended on ended).
type streamServer struct {
	state string
	srv   *Server
	next  chan int
	ended chan error
}

func newStreamServer(t *testing.T) *streamServer {
	t.Helper()
	ss := &streamServer{state: t.TempDir(), next: make(chan int), ended: make(chan error, 2*MaxStreams)}
	hs := echoHandlers()
	hs["count"] = func(_ context.Context, raw json.RawMessage) (any, error) {
		var p struct{ N int }
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		return Stream(func(ctx context.Context, send func(any) error) error {
			for i := range p.N {
				if err := send(i); err != nil {
					return err
				}
			}
			if p.N < 0 {
				return errors.New("a negative count")
			}
			return nil
		}), nil
	}
	hs["follow"] = func(context.Context, json.RawMessage) (any, error) {
		return Stream(func(ctx context.Context, send func(any) error) error {
			for {
				select {
				case n := <-ss.next:
					if err := send(n); err != nil {
						ss.ended <- err
						return err
					}
				case <-ctx.Done():
					if Stopping(ctx) {
						send(-1) // what it still holds goes out before the end
					}
					ss.ended <- ctx.Err()
					return ctx.Err()
				}
			}
		}), nil
	}
	s, err := Listen(ss.state, hs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss.srv = s
	t.Cleanup(func() { s.Close() })
	return ss
}

func TestStream(t *testing.T) {
	ss := newStreamServer(t)
	tests := []struct {
		name string
		n    int
		want []string
		err  string
	}{
		{name: "frames then the end", n: 3, want: []string{"0", "1", "2"}},
		{name: "empty", n: 0},
		{name: "ends with an error", n: -1, err: "a negative count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			started := false
			err := CallStream(context.Background(), ss.state, "count", map[string]int{"n": tc.n}, func(r json.RawMessage) error {
				if r == nil {
					started = true
					return nil
				}
				got = append(got, string(r))
				return nil
			})
			var re *RemoteError
			switch {
			case tc.err != "" && (!errors.As(err, &re) || re.Msg != tc.err):
				t.Fatalf("error %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && !started:
				t.Fatal("onFrame was not called with nil once the stream was accepted")
			case fmt.Sprint(got) != fmt.Sprint(tc.want):
				t.Fatalf("frames %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("a unary method through CallStream", func(t *testing.T) {
		err := CallStream(context.Background(), ss.state, "echo", "x", func(json.RawMessage) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "answered with a result, not a stream") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestStreamClientGone: a client that goes away ends its stream on the host.
func TestStreamClientGone(t *testing.T) {
	ss := newStreamServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- CallStream(ctx, ss.state, "follow", nil, func(r json.RawMessage) error {
			if r != nil {
				cancel() // the first frame: the client leaves
			}
			return nil
		})
	}()
	ss.next <- 1
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	if err := <-ss.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the stream on the host ended with %v, want its context canceled", err)
	}
}

// TestStreamServerClose: closing the server ends every stream with a last frame saying the
// host is shutting down, after what the stream still sends once it sees the server stopping.
func TestStreamServerClose(t *testing.T) {
	ss := newStreamServer(t)
	frames := make(chan json.RawMessage)
	done := make(chan error)
	go func() {
		done <- CallStream(context.Background(), ss.state, "follow", nil, func(r json.RawMessage) error {
			if r != nil {
				frames <- r
			}
			return nil
		})
	}()
	ss.next <- 7
	if r := <-frames; string(r) != "7" {
		t.Fatalf("frame %s", r)
	}
	go func() {
		if r := <-frames; string(r) != "-1" {
			t.Errorf("frame after Close: %s, want -1", r)
		}
	}()
	ss.srv.Close()
	var re *RemoteError
	if err := <-done; !errors.As(err, &re) || re.Msg != ErrStopping.Error() {
		t.Fatalf("client: %v, want %q", err, ErrStopping)
	}
}

// TestMaxStreams: one stream beyond MaxStreams is refused at once, saying why, and its Stream
// still runs (with its context ended) so that it releases what it holds; the other methods are
// still served meanwhile.
func TestMaxStreams(t *testing.T) {
	ss := newStreamServer(t)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, MaxStreams)
	for range MaxStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			CallStream(ctx, ss.state, "follow", nil, func(json.RawMessage) error { started <- struct{}{}; return nil })
		}()
	}
	// Each of them has its stream once it is told so (onFrame(nil)).
	for range MaxStreams {
		<-started
	}
	err := CallStream(context.Background(), ss.state, "follow", nil, func(json.RawMessage) error { return nil })
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, fmt.Sprintf("busy: %d streams", MaxStreams)) {
		t.Fatalf("stream %d: %v", MaxStreams+1, err)
	}
	if err := <-ss.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the refused stream ran with %v, want an ended context", err)
	}
	if err := Call(context.Background(), ss.state, "echo", "x", nil); err != nil {
		t.Fatalf("a unary call while the streams are open: %v", err)
	}
	cancel()
	wg.Wait()
}

// TestQuietStream: a stream with nothing to send outlives IOTimeout.
func TestQuietStream(t *testing.T) {
	if testing.Short() {
		t.Skip("waits past IOTimeout (10 s)")
	}
	t.Parallel()
	ss := newStreamServer(t)
	frames := make(chan json.RawMessage)
	done := make(chan error)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- CallStream(ctx, ss.state, "follow", nil, func(r json.RawMessage) error {
			if r != nil {
				frames <- r
			}
			return nil
		})
	}()
	ss.next <- 1
	<-frames
	// The point of the test is the time that passes: no event marks "IOTimeout is over".
	<-time.After(IOTimeout + time.Second)
	ss.next <- 2
	if r := <-frames; string(r) != "2" {
		t.Fatalf("frame after a quiet %s: %s", IOTimeout, r)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestCloseSlowStreamClient: a stream whose client reads nothing does not hold up the server's
// Close (and so the host's exit) for StreamWriteTimeout: its blocked write ends within
// StreamEndTimeout.
func TestCloseSlowStreamClient(t *testing.T) {
	ss := newStreamServer(t)
	c, err := net.Dial("unix", ss.srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(IOTimeout))
	// Far more frames than the socket buffers hold: the stream's writes block once they are full.
	if err := WriteFrame(c, Request{Method: "count", Params: json.RawMessage(`{"n":100000000}`)}); err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := ReadFrame(c, &resp); err != nil || !resp.OK {
		t.Fatalf("%+v, %v", resp, err)
	}
	closed := make(chan struct{})
	start := time.Now()
	go func() { ss.srv.Close(); close(closed) }()
	select {
	case <-closed:
		t.Logf("Close took %s", time.Since(start))
	case <-time.After(IOTimeout):
		t.Fatalf("Close waited more than %s for a stream whose client reads nothing", IOTimeout)
	}
}
