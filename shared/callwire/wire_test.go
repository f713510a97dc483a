package callwire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/shared/pb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a real call connection (two pipes): the host's end and the shim's end as Conns.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	host, shimFiles, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	shim, err := FilesConn(shimFiles.In, shimFiles.Out)
	shimFiles.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); shim.Close() })
	return host, shim
}

func header(n uint32, kind Kind, id uint64) []byte {
	h := make([]byte, HeaderBytes)
	binary.LittleEndian.PutUint32(h, n)
	h[4] = byte(kind)
	binary.LittleEndian.PutUint64(h[8:], id)
	return h
}

// TestReadFrameBoundsBeforeReading: a header announcing more than the limit is refused without
// reading (or allocating) the body: here no body follows at all, so a reader that tried to read
// it would block until the test times out.
func TestReadFrameBoundsBeforeReading(t *testing.T) {
	tests := []struct {
		name  string
		n     uint32
		limit int
		want  string
	}{
		{"one byte over", MaxHostFrameBytes + 1, MaxHostFrameBytes, "a host call frame of 11534337 bytes; the limit is 11534336 bytes"},
		{"4 GiB", 0xffffffff, MaxShimFrameBytes, "a host call frame of 4294967295 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t)
			if _, err := a.out.Write(header(tc.n, HostCall, 1)); err != nil {
				t.Fatal(err)
			}
			_, _, _, err := b.ReadFrame(tc.limit)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrTooLarge saying %q", err, tc.want)
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	a, b := pair(t)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i)
	}
	for _, in := range [][]byte{nil, []byte("hello"), big} {
		written := make(chan error, 1)
		go func() { written <- a.WriteFrame(Call, 7, &pb.InvokeRequest{Export: "echo", Input: in}) }()
		kind, id, body, err := b.ReadFrame(MaxShimFrameBytes)
		if werr := <-written; werr != nil {
			t.Fatal(werr)
		}
		if err != nil || kind != Call || id != 7 {
			t.Fatalf("%v %d %v", kind, id, err)
		}
		var req pb.InvokeRequest
		if err := Decode(kind, body, &req); err != nil || req.Export != "echo" || string(req.Input) != string(in) {
			t.Fatalf("decoded %q (%d bytes), %v", req.Export, len(req.Input), err)
		}
	}
	if _, err := a.out.Write([]byte{0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := b.ReadFrame(MaxShimFrameBytes); err == nil || !strings.Contains(err.Error(), "reserved header bytes") {
		t.Fatalf("reserved bytes: %v", err)
	}
}

// endpoints runs a HostEnd and a ShimEnd over a real call connection. violations collects what the host
// end refused.
type endpoints struct {
	host       *HostEnd
	shim       *ShimEnd
	raw        *Conn // the shim's connection, for frames a correct shim never sends
	mu         sync.Mutex
	violations []error
	hostServed chan error // what the host end's Serve returned
	shimServed chan error
}

func (e *endpoints) violation(err error) error {
	e.mu.Lock()
	e.violations = append(e.violations, err)
	e.mu.Unlock()
	return status.Error(codes.PermissionDenied, err.Error())
}

// newEndpoints connects a HostEnd serving hostCall and a ShimEnd running invoke; setup runs on
// both ends before they serve.
func newEndpoints(t *testing.T, hostCall HostFunc, invoke func(*ShimEnd, *pb.InvokeRequest) *pb.InvokeResponse, setup ...func(*endpoints)) *endpoints {
	t.Helper()
	hc, sc := pair(t)
	e := &endpoints{host: NewHostEnd(hc), shim: NewShimEnd(sc), raw: sc, hostServed: make(chan error, 1), shimServed: make(chan error, 1)}
	for _, f := range setup {
		f(e) // before Serve
	}
	go func() { e.hostServed <- e.host.Serve(hostCall, e.violation) }()
	go func() {
		e.shimServed <- e.shim.Serve(func(req *pb.InvokeRequest, reply func(*pb.InvokeResponse)) { reply(invoke(e.shim, req)) })
	}()
	t.Cleanup(func() {
		e.host.Close()
		e.shim.Close()
		<-e.host.Done()
		<-e.shimServed
	})
	return e
}

// TestCallsAndHostCalls: an export call whose guest makes host calls, with the answers (results
// and error statuses) where they belong.
func TestCallsAndHostCalls(t *testing.T) {
	hostCall := func(_ context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		if req.Op == pb.HostOp_HOST_OP_KV_GET {
			return &pb.HostCallResponse{Result: append([]byte("value of "), req.Args[0]...)}, nil
		}
		return nil, status.Error(codes.Unimplemented, "no such function")
	}
	e := newEndpoints(t, hostCall, func(s *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		resp, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_KV_GET, Args: [][]byte{req.Input}})
		if err != nil {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
		}
		_, err = s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_FS_STAT})
		if status.Code(err) != codes.Unimplemented || status.Convert(err).Message() != "no such function" {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: "the error status came back as " + err.Error()}}
		}
		return &pb.InvokeResponse{Output: resp.Result}
	})
	for _, key := range []string{"a", "b"} {
		resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "x", Input: []byte(key)})
		if err != nil || resp.Error != nil || string(resp.Output) != "value of "+key {
			t.Fatalf("%v %v", resp, err)
		}
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}

// TestHostCallCancel: a host call the shim stops waiting for (its call's time is up) is
// cancelled on the host, and the next host call is served although the cancelled one's handler
// has not returned yet.
func TestHostCallCancel(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	hostCall := func(ctx context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		if req.Op == pb.HostOp_HOST_OP_NET_ACCEPT {
			close(entered)
			MayWait(ctx) // it waits: another goroutine reads the Cancel meanwhile
			<-ctx.Done()
			<-release // still running when the next host call comes
			return nil, ctx.Err()
		}
		return &pb.HostCallResponse{Result: []byte("next")}, nil
	}
	e := newEndpoints(t, hostCall, func(s *ShimEnd, _ *pb.InvokeRequest) *pb.InvokeResponse {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-entered; cancel() }()
		_, err := s.HostCall(ctx, &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_NET_ACCEPT})
		if status.Code(err) != codes.Canceled {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: "blocked host call: " + err.Error()}}
		}
		resp, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_KV_GET})
		if err != nil {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: "next host call: " + err.Error()}}
		}
		return &pb.InvokeResponse{Output: resp.Result}
	})
	resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{})
	close(release)
	if err != nil || resp.Error != nil || string(resp.Output) != "next" {
		t.Fatalf("%v %v", resp, err)
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}

// TestConnectionEnd: a call waiting when the shim's end closes (the shim died) fails at once
// with Unavailable, and so does any call after; a host call waiting when the host's end closes
// is cancelled.
func TestConnectionEnd(t *testing.T) {
	inHostCall := make(chan struct{})
	hostCtxDone := make(chan struct{})
	e := newEndpoints(t, func(ctx context.Context, _ *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		MayWait(ctx)
		close(inHostCall)
		<-ctx.Done()
		close(hostCtxDone)
		return nil, ctx.Err()
	}, func(s *ShimEnd, _ *pb.InvokeRequest) *pb.InvokeResponse {
		_, err := s.HostCall(context.Background(), &pb.HostCallRequest{})
		return &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
	})
	done := make(chan error, 1)
	go func() {
		_, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{})
		done <- err
	}()
	// Both the call and its host call are under way (closing once the shim's handler had
	// started raced with its HostCall frame: the host could see the end before the host call).
	<-inHostCall
	e.raw.Close() // the shim is gone
	if err := <-done; status.Code(err) != codes.Unavailable {
		t.Fatalf("waiting call: %v", err)
	}
	<-hostCtxDone
	if _, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after the end: %v", err)
	}
}

// TestViolations: frames a correct shim never sends end the connection through violation, which
// names what was wrong; calls waiting then fail.
func TestViolations(t *testing.T) {
	tests := []struct {
		name string
		send func(c *Conn) error
		want string
	}{
		{"a kind only the host sends", func(c *Conn) error { return c.WriteFrame(Call, 1, &pb.InvokeRequest{}) }, "a call frame, which only the host sends"},
		{"an unknown kind", func(c *Conn) error { return c.WriteFrame(Kind(42), 1, nil) }, "a kind 42 frame, which only the host sends"},
		{"a result of a call never sent", func(c *Conn) error { return c.WriteFrame(CallResult, 99, &pb.InvokeResponse{}) }, "a call result for call 99, which the host never sent"},
		{"a second host call at once", func(c *Conn) error {
			if err := c.WriteFrame(HostCall, 1, &pb.HostCallRequest{}); err != nil {
				return err
			}
			return c.WriteFrame(HostCall, 2, &pb.HostCallRequest{})
		}, "host call 2 while another is in progress"},
		{"an oversized frame", func(c *Conn) error { _, err := c.out.Write(header(MaxHostFrameBytes+1, HostCall, 1)); return err }, "frame too large"},
		{"an undecodable body", func(c *Conn) error {
			_, err := c.out.Write(append(header(3, HostCall, 1), 0xff, 0xff, 0xff))
			return err
		}, "decode a host call frame"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			block := make(chan struct{})
			defer close(block)
			e := newEndpoints(t, func(ctx context.Context, _ *pb.HostCallRequest) (*pb.HostCallResponse, error) {
				MayWait(ctx)
				select {
				case <-block:
				case <-ctx.Done():
				}
				return &pb.HostCallResponse{}, nil
			}, func(*ShimEnd, *pb.InvokeRequest) *pb.InvokeResponse { return &pb.InvokeResponse{} })
			if err := tc.send(e.raw); err != nil {
				t.Fatal(err)
			}
			e.expectRefused(t, tc.want)
		})
	}
}

// expectRefused waits for the host end to stop serving on a violation, the one it recorded
// saying want.
func (e *endpoints) expectRefused(t *testing.T, want string) {
	t.Helper()
	select {
	case err := <-e.hostServed:
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("Serve ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host end did not refuse the frame")
	}
	if len(e.violations) != 1 || !strings.Contains(e.violations[0].Error(), want) {
		t.Fatalf("violations %v, want one saying %q", e.violations, want)
	}
}

func TestInheritedConnErrors(t *testing.T) {
	tests := []struct {
		name, value, want string
		set               bool
	}{
		{"unset", "", "is not set", false},
		{"not a number", "x,4", "want two different descriptor numbers", true},
		{"one descriptor", "5", `want two different descriptor numbers of 3 or more, "IN,OUT"`, true},
		{"stdio", "1,4", "want two different descriptor numbers of 3 or more", true},
		{"the same twice", "5,5", "want two different descriptor numbers", true},
		{"not a pipe", "NULL,NULL2", "is not a pipe", true},
	}
	for _, tc := range tests {
		if tc.value == "NULL,NULL2" {
			// Two descriptors that are not pipes, which InheritedConn closes, as it does the
			// descriptors it inherited.
			fds := make([]string, 2)
			for i := range fds {
				fd, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				fds[i] = strconv.Itoa(fd)
			}
			tc.value = strings.Join(fds, ",")
		}
		t.Run(tc.name, func(t *testing.T) {
			if tc.set {
				t.Setenv(EnvShimCallsFD, tc.value)
			} else {
				os.Unsetenv(EnvShimCallsFD)
			}
			if _, err := InheritedConn(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReadFrameContextResumes: a read interrupted part-way through a frame (its header, or its
// body) keeps what it read, and the next read returns the whole frame: the stream keeps its
// framing when a host call is cancelled while its goroutine reads.
func TestReadFrameContextResumes(t *testing.T) {
	body := []byte(strings.Repeat("x", 1000))
	frame := append(header(uint32(len(body)), HostResult, 7), body...)
	tests := []struct {
		name  string
		split int // bytes written before the interruption
	}{
		{"nothing yet", 0},
		{"part of the header", 5},
		{"the header", HeaderBytes},
		{"part of the body", HeaderBytes + 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t)
			if _, err := a.out.Write(frame[:tc.split]); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, _, _, err := b.ReadFrameContext(ctx, 1<<20)
				errc <- err
			}()
			cancel()
			if err := <-errc; !errors.Is(err, errInterrupted) || !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted read: %v", err)
			}
			if _, err := a.out.Write(frame[tc.split:]); err != nil {
				t.Fatal(err)
			}
			kind, id, got, err := b.ReadFrameContext(context.Background(), 1<<20)
			if err != nil || kind != HostResult || id != 7 || string(got) != string(body) {
				t.Fatalf("after the interruption: %v %d %d bytes, %v", kind, id, len(got), err)
			}
		})
	}
}

// TestCtxReadsAcrossFrames: one registration with a context serves many reads, interrupts the
// one that waits when the context ends, makes the next return at once, and leaves no deadline
// behind for a reader that comes after it (the read turn handed on).
func TestCtxReadsAcrossFrames(t *testing.T) {
	a, b := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := b.readsUnder(ctx)
	defer r.close()
	for i := range 3 {
		if err := a.WriteFrame(HostResult, uint64(i), nil); err != nil {
			t.Fatal(err)
		}
		if kind, id, _, err := r.ReadFrame(1 << 20); err != nil || kind != HostResult || id != uint64(i) {
			t.Fatalf("read %d: %v %d %v", i, kind, id, err)
		}
	}
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := r.ReadFrame(1 << 20)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, errInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("a read waiting when the context ended: %v", err)
	}
	if err := a.WriteFrame(HostResult, 9, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.ReadFrame(1 << 20); !errors.Is(err, errInterrupted) {
		t.Fatalf("a read after the context ended: %v, want errInterrupted", err)
	}
	// Another reader: the frame is there for it, and no deadline cuts its reads short.
	if kind, id, _, err := b.ReadFrame(1 << 20); err != nil || kind != HostResult || id != 9 {
		t.Fatalf("the next reader: %v %d %v", kind, id, err)
	}
	go func() {
		_, _, _, err := b.ReadFrame(1 << 20)
		errc <- err
	}()
	if err := a.WriteFrame(HostResult, 10, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("the next reader, waiting: %v", err)
	}
}

// TestReadFrameThreadPartFrame: a guest's read of a frame that has begun to arrive reads what is
// there without waiting, waits for the rest watching its context, and keeps what it read when
// the context ends first.
func TestReadFrameThreadPartFrame(t *testing.T) {
	body := []byte(strings.Repeat("y", 700))
	frame := append(header(uint32(len(body)), HostResult, 3), body...)
	for _, split := range []int{len(frame), 5, HeaderBytes, HeaderBytes + 100} {
		t.Run(strconv.Itoa(split), func(t *testing.T) {
			a, b := pair(t)
			if _, err := a.out.Write(frame[:split]); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if split < len(frame) {
				errc := make(chan error, 1)
				go func() {
					_, _, _, err := b.ReadFrameThread(ctx, 1<<20)
					errc <- err
				}()
				cancel()
				if err := <-errc; !errors.Is(err, errInterrupted) {
					t.Fatalf("a read of part of a frame whose context ended: %v", err)
				}
				if _, err := a.out.Write(frame[split:]); err != nil {
					t.Fatal(err)
				}
				ctx = context.Background()
			}
			kind, id, got, err := b.ReadFrameThread(ctx, 1<<20)
			if err != nil || kind != HostResult || id != 3 || string(got) != string(body) {
				t.Fatalf("got %v %d %d bytes, %v", kind, id, len(got), err)
			}
		})
	}
}

// TestLongCallKeepsConnectionRead: a call that runs long (a run loop) does not leave the
// connection unread: a takeover reader serves the answers to the host calls of another goroutine
// and the calls that come meanwhile, and the connection's end still reaches everyone.
func TestLongCallKeepsConnectionRead(t *testing.T) {
	release, running := make(chan struct{}), make(chan struct{})
	e := newEndpoints(t, func(_ context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		return &pb.HostCallResponse{Result: req.Args[0]}, nil
	}, func(s *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		if req.Export == "run" {
			close(running)
			<-release // holds the goroutine that read it, past takeoverDelay
			return &pb.InvokeResponse{}
		}
		resp, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_KV_GET, Args: [][]byte{req.Input}})
		if err != nil {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
		}
		return &pb.InvokeResponse{Output: resp.Result}
	})
	runDone := make(chan error, 1)
	go func() {
		_, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "run"})
		runDone <- err
	}()
	<-running
	for _, in := range []string{"a", "b", "c"} {
		resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "x", Input: []byte(in)})
		if err != nil || resp.Error != nil || string(resp.Output) != in {
			t.Fatalf("a call beside the long one: %v %v", resp, err)
		}
	}
	close(release)
	if err := <-runDone; err != nil {
		t.Fatalf("the long call: %v", err)
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}

// TestHostEndAnswered: the answered hook gets each host call's request and result only once the
// result is on the wire, so its owner may reuse the result's buffer: the hook overwrites the
// buffer, and the shim must still receive what the handler returned.
func TestHostEndAnswered(t *testing.T) {
	hc, sc := pair(t)
	host, shim := NewHostEnd(hc), NewShimEnd(sc)
	var mu sync.Mutex
	var answered []string
	host.HandleAnswered(func(req *pb.HostCallRequest, resp *pb.HostCallResponse) {
		mu.Lock()
		answered = append(answered, string(req.Args[0]))
		mu.Unlock()
		for i := range resp.Result {
			resp.Result[i] = 'X' // what the next use of the buffer would do
		}
	})
	hostCall := func(_ context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		return &pb.HostCallResponse{Result: append([]byte("result of "), req.Args[0]...)}, nil
	}
	hostServed, shimServed := make(chan error, 1), make(chan error, 1)
	go func() { hostServed <- host.Serve(hostCall, func(err error) error { return err }) }()
	go func() {
		shimServed <- shim.Serve(func(req *pb.InvokeRequest, reply func(*pb.InvokeResponse)) {
			var out []byte
			for _, arg := range []string{"a", "b", "c"} {
				resp, err := shim.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_IPC_POLL, Args: [][]byte{[]byte(arg)}})
				if err != nil {
					reply(&pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}})
					return
				}
				out = append(append(out, resp.Result...), ';')
			}
			reply(&pb.InvokeResponse{Output: out})
		})
	}()
	defer func() {
		host.Close()
		shim.Close()
		<-hostServed
		<-shimServed
	}()
	resp, err := host.Invoke(context.Background(), &pb.InvokeRequest{Export: "x"})
	if err != nil || resp.Error != nil {
		t.Fatalf("%v %v", resp, err)
	}
	if got, want := string(resp.Output), "result of a;result of b;result of c;"; got != want {
		t.Errorf("the shim received %q, want %q: the hook ran before the answer was written", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(answered, ","); got != "a,b,c" {
		t.Errorf("answered for %q, want a,b,c", got)
	}
}

// TestTakeoverHandsBack: once a call has gone takeoverDelay without reading (here: until a
// second call has been served beside it, which only a takeover reader can read), the takeover
// reader answers the call's next host call and then gives the turn back: the call's goroutine
// reads the answers to its later host calls itself, rather than each being handed to it by the
// takeover reader (a wake-up more each, for the rest of a run loop's life).
func TestTakeoverHandsBack(t *testing.T) {
	const hostCalls = 20
	proceed, running := make(chan struct{}), make(chan struct{})
	e := newEndpoints(t, func(_ context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		return &pb.HostCallResponse{Result: req.Args[0]}, nil
	}, func(s *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		if req.Export != "run" {
			return &pb.InvokeResponse{Output: req.Input}
		}
		close(running)
		<-proceed
		for i := range hostCalls {
			in := []byte{byte(i)}
			resp, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_KV_GET, Args: [][]byte{in}})
			if err != nil || !bytes.Equal(resp.Result, in) {
				return &pb.InvokeResponse{Error: &pb.GuestError{Message: fmt.Sprintf("host call %d: %v %v", i, resp, err)}}
			}
		}
		return &pb.InvokeResponse{}
	})
	runDone := make(chan *pb.InvokeResponse, 1)
	go func() {
		resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "run"})
		if err != nil {
			resp = &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
		}
		runDone <- resp
	}()
	<-running
	// The goroutine that read "run" waits in it: only a takeover reader can read this call.
	if resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "x", Input: []byte("x")}); err != nil || string(resp.Output) != "x" {
		t.Fatalf("a call beside the waiting one: %v %v", resp, err)
	}
	close(proceed)
	if resp := <-runDone; resp.Error != nil {
		t.Fatalf("the long call: %s", resp.Error.Message)
	}
	// Each takeover reader hands at most one answer on before it gives the turn back (another
	// may start if the call's goroutine stalls past takeoverDelay again on a busy machine).
	if handed, takeovers := e.shim.handedOff.Load(), e.shim.turn.takeovers.Load(); takeovers < 1 || handed > takeovers {
		t.Fatalf("%d of %d host call answers handed on by a takeover reader, with %d takeovers", handed, hostCalls, takeovers)
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}

// TestInvokeReadsItsAnswer: calls that follow one another each read their own answer: a call's
// answer is handed on by another goroutine only by a turn of Serve's goroutine (which reads
// once the connection has gone unread for takeoverDelay, and gives the turn back after handing
// one answer on) or of a takeover reader, never by a reader that keeps the turn.
func TestInvokeReadsItsAnswer(t *testing.T) {
	const calls = 50
	e := newEndpoints(t, nil, func(_ *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		return &pb.InvokeResponse{Output: req.Input}
	})
	for i := range calls {
		in := []byte{byte(i)}
		resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "echo", Input: in})
		if err != nil || !bytes.Equal(resp.Output, in) {
			t.Fatalf("call %d: %v %v", i, resp, err)
		}
	}
	handed, turns := e.host.handedOff.Load(), e.host.serveTurns.Load()+e.host.turn.takeovers.Load()
	if handed > turns {
		t.Fatalf("%d of %d answers handed on, in %d turns of other readers", handed, calls, turns)
	}
}

// TestInvokeEndsWhileHostCallWaits: an Invoke that read a host call which may wait (not quick)
// does not run it itself: when the Invoke's context ends, it returns at once, while the host
// call goes on until the shim cancels it; a quick host call it runs itself.
func TestInvokeEndsWhileHostCallWaits(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	e := newEndpoints(t, func(ctx context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		if req.Op == pb.HostOp_HOST_OP_KV_GET {
			return &pb.HostCallResponse{Result: req.Args[0]}, nil
		}
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &pb.HostCallResponse{}, nil
	}, func(s *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		if req.Export != "wait" {
			return &pb.InvokeResponse{Output: []byte(req.Export)}
		}
		if _, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_KV_GET, Args: [][]byte{{1}}}); err != nil {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
		}
		_, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_HTTP_REQUEST})
		return &pb.InvokeResponse{Output: []byte(fmt.Sprint(err))}
	}, func(e *endpoints) {
		e.host.HandleQuick(func(req *pb.HostCallRequest) bool { return req.Op == pb.HostOp_HOST_OP_KV_GET })
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	if _, err := e.host.Invoke(ctx, &pb.InvokeRequest{Export: "wait"}); status.Code(err) != codes.Canceled {
		t.Fatalf("Invoke while its host call waits, context cancelled: %v", err)
	}
	close(release)
	// The connection is still read: the shim's answer to the abandoned call is dropped, and a
	// new call is served.
	if resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "again"}); err != nil || string(resp.Output) != "again" {
		t.Fatalf("the next call: %v %v", resp, err)
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}
