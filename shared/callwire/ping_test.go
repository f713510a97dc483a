package callwire

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/astrid-go/astrid/shared/pb"
)

// pingEndpoints is newEndpoints with the shim's end answering pings with what ping makes for it
// (set before its Serve reads; nil for no PingFunc).
func pingEndpoints(t *testing.T, ping func(*ShimEnd) PingFunc) *endpoints {
	t.Helper()
	answer := func(context.Context, *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		return &pb.HostCallResponse{}, nil
	}
	invoke := func(*ShimEnd, *pb.InvokeRequest) *pb.InvokeResponse { return &pb.InvokeResponse{} }
	return newEndpoints(t, answer, invoke, func(e *endpoints) {
		if ping != nil {
			e.shim.HandlePings(ping(e.shim))
		}
	})
}

// TestPing: the shim's health comes back to the host as the PingFunc gave it, encoded as
// pb.HealthResponse; a ping the PingFunc leaves for later is answered by Pong.
func TestPing(t *testing.T) {
	tests := []struct {
		name   string
		health Health
		later  bool
		none   bool // no PingFunc
	}{
		{name: "idle", health: Health{Loaded: true, Calls: 12345678901}},
		{name: "busy", health: Health{Loaded: true, Calls: 3, Busy: true}},
		{name: "nothing loaded", health: Health{}},
		{name: "answered later", health: Health{Loaded: true, Calls: 1}, later: true},
		{name: "no PingFunc", none: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ping := func(s *ShimEnd) PingFunc {
				return func(id uint64) (Health, bool) {
					if tc.later {
						go func() { _ = s.Pong(id, tc.health) }()
						return Health{}, false
					}
					return tc.health, true
				}
			}
			if tc.none {
				ping = nil
			}
			e := pingEndpoints(t, ping)
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				h, err := e.host.Ping(ctx)
				cancel()
				if err != nil || h != tc.health {
					t.Fatalf("ping: %+v, %v; want %+v", h, err, tc.health)
				}
			}
			if len(e.violations) != 0 {
				t.Fatal(e.violations)
			}
		})
	}
}

// TestPongIsHealthResponse: the Pong's body is what proto.Marshal makes of the
// pb.HealthResponse it stands for.
func TestPongIsHealthResponse(t *testing.T) {
	for _, h := range []Health{{}, {Loaded: true}, {Calls: 1}, {Calls: 1 << 63}, {Busy: true}, {Loaded: true, Calls: 300, Busy: true}} {
		want, err := proto.Marshal(&pb.HealthResponse{Loaded: h.Loaded, Calls: h.Calls, Busy: h.Busy})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendHealth(nil, h); string(got) != string(want) || len(got) > maxPongBytes {
			t.Fatalf("%+v: %x, want %x (at most %d bytes)", h, got, want, maxPongBytes)
		}
	}
}

// TestPingDeadline: a ping the shim does not answer in time fails with DeadlineExceeded; its
// late Pong is dropped (no violation), and the next ping is answered.
func TestPingDeadline(t *testing.T) {
	held := make(chan uint64, 1)
	e := pingEndpoints(t, func(*ShimEnd) PingFunc {
		return func(id uint64) (Health, bool) {
			if id == 1 {
				held <- id // answered after the host gave up
				return Health{}, false
			}
			return Health{Loaded: true}, true
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := e.host.Ping(ctx)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("unanswered ping: %v, want DeadlineExceeded", err)
	}
	if err := e.shim.Pong(<-held, Health{Loaded: true}); err != nil {
		t.Fatal(err)
	}
	if h, err := e.host.Ping(context.Background()); err != nil || !h.Loaded {
		t.Fatalf("next ping: %+v, %v", h, err)
	}
	if len(e.violations) != 0 {
		t.Fatal(e.violations)
	}
}

// TestPingConnectionEnd: a ping waiting when the shim's end closes (the shim died) fails at once
// with Unavailable, and so does any ping after.
func TestPingConnectionEnd(t *testing.T) {
	pinged := make(chan struct{})
	e := pingEndpoints(t, func(*ShimEnd) PingFunc {
		return func(uint64) (Health, bool) { close(pinged); return Health{}, false }
	})
	done := make(chan error, 1)
	go func() {
		_, err := e.host.Ping(context.Background())
		done <- err
	}()
	<-pinged
	e.raw.Close()
	if err := <-done; status.Code(err) != codes.Unavailable {
		t.Fatalf("waiting ping: %v, want Unavailable", err)
	}
	if _, err := e.host.Ping(context.Background()); status.Code(err) != codes.Unavailable {
		t.Fatalf("ping after the end: %v, want Unavailable", err)
	}
}

// TestPingViolations: pong frames a correct shim never sends, and a ping from the shim, end the
// connection through violation.
func TestPingViolations(t *testing.T) {
	tests := []struct {
		name string
		send func(c *Conn) error
		want string
	}{
		{"a pong for a ping never sent", func(c *Conn) error { return c.WriteFrame(Pong, 7, &pb.HealthResponse{Loaded: true}) }, "a pong frame for ping 7, which the host never sent"},
		{"an oversized pong", func(c *Conn) error {
			_, err := c.out.Write(append(header(maxPongBytes+1, Pong, 1), make([]byte, maxPongBytes+1)...))
			return err
		}, "a pong frame of 33 bytes"},
		{"an undecodable pong", func(c *Conn) error { _, err := c.out.Write(append(header(2, Pong, 1), 0xff, 0xff)); return err }, "decode a pong frame"},
		{"a ping from the shim", func(c *Conn) error { return c.WriteFrame(Ping, 1, nil) }, "a ping frame, which only the host sends"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := pingEndpoints(t, nil)
			if err := tc.send(e.raw); err != nil {
				t.Fatal(err)
			}
			e.expectRefused(t, tc.want)
		})
	}
}

// TestShimEndRefusesPingWithBody: a ping with a body is no ping a host sends: the shim's end
// ends the connection.
func TestShimEndRefusesPingWithBody(t *testing.T) {
	hc, sc := pair(t)
	shim := NewShimEnd(sc)
	served := make(chan error, 1)
	go func() { served <- shim.Serve(func(*pb.InvokeRequest, func(*pb.InvokeResponse)) {}) }()
	if _, err := hc.out.Write(append(header(1, Ping, 1), 0)); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err == nil || !strings.Contains(err.Error(), "a ping frame with a 1-byte body") {
		t.Fatalf("Serve ended with %v", err)
	}
}

// TestShimEndPingsAllocateNothing: the shim's end reads a ping and answers it without
// allocating, so that an idle shim, which only answers pings, never has garbage to collect. The
// host's side here is the pipes themselves, read and written with plain system calls, so that
// every allocation counted is the shim end's.
func TestShimEndPingsAllocateNothing(t *testing.T) {
	var down, up [2]int // host → shim, shim → host
	if err := errors.Join(unix.Pipe2(down[:], unix.O_CLOEXEC), unix.Pipe2(up[:], unix.O_CLOEXEC)); err != nil {
		t.Fatal(err)
	}
	hostOut, hostIn := down[1], up[0]
	in, out := os.NewFile(uintptr(down[0]), "shim in"), os.NewFile(uintptr(up[1]), "shim out")
	c, err := FilesConn(in, out)
	in.Close()
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	shim := NewShimEnd(c)
	want := Health{Loaded: true, Calls: 300}
	shim.HandlePings(func(uint64) (Health, bool) { return want, true })
	served := make(chan error, 1)
	go func() { served <- shim.Serve(func(*pb.InvokeRequest, func(*pb.InvokeResponse)) {}) }()
	defer func() {
		unix.Close(hostOut) // the shim's end reads EOF and Serve returns
		if err := <-served; !errors.Is(err, io.EOF) {
			t.Errorf("Serve ended with %v, want EOF", err)
		}
		unix.Close(hostIn)
	}()

	ping := header(0, Ping, 1)
	body := appendHealth(nil, want)
	pong := make([]byte, HeaderBytes+len(body))
	var rerr error
	roundTrip := func() {
		if _, err := unix.Write(hostOut, ping); err != nil {
			rerr = err
			return
		}
		for n := 0; n < len(pong); {
			m, err := unix.Read(hostIn, pong[n:])
			if err != nil || m == 0 {
				rerr = errors.Join(err, io.ErrUnexpectedEOF)
				return
			}
			n += m
		}
	}
	roundTrip() // the first frames size the shim end's buffers
	if rerr != nil {
		t.Fatal(rerr)
	}
	if Kind(pong[4]) != Pong || string(pong[HeaderBytes:]) != string(body) {
		t.Fatalf("answer %x, want a pong with %x", pong, body)
	}
	allocs := testing.AllocsPerRun(1000, roundTrip)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if allocs != 0 {
		t.Fatalf("a ping and its answer allocated %.2f times", allocs)
	}
}
