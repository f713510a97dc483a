package shim

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
)

// pingServer is a Server with only what ping needs (the Store's lock and state, the call
// connection), served over a real socket pair with the host's end in the test's hands.
func pingServer(t *testing.T) (*Server, *callwire.HostEnd) {
	t.Helper()
	hc, sf, err := callwire.Pair()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := callwire.FilesConn(sf.In, sf.Out)
	sf.Close()
	if err != nil {
		hc.Close()
		t.Fatal(err)
	}
	s := &Server{storeLock: make(chan struct{}, 1), calls: callwire.NewShimEnd(sc)}
	s.unloading, s.unload = context.WithCancelCause(context.Background())
	s.calls.HandlePings(s.ping)
	host := callwire.NewHostEnd(hc)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.calls.Serve(func(*pb.InvokeRequest, func(*pb.InvokeResponse)) {})
	}()
	go func() {
		_ = host.Serve(func(context.Context, *pb.HostCallRequest) (*pb.HostCallResponse, error) {
			return nil, errors.New("none")
		},
			func(err error) error { t.Errorf("violation: %v", err); return err })
	}()
	t.Cleanup(func() {
		s.unload(errUnloading) // ends a pongLater still waiting
		host.Close()
		<-host.Done()
		<-served
	})
	return s, host
}

// TestPingAnswers: the shim answers a ping with busy while a guest call holds the Store, with
// its state once it holds the Store, and, when the Store is held outside a guest call, once it
// is released: a Store held past the host's deadline is a missed deadline (the host stops the
// shim), and the late answer is dropped.
func TestPingAnswers(t *testing.T) {
	s, host := pingServer(t)
	ping := func(d time.Duration) (callwire.Health, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return host.Ping(ctx)
	}
	s.callCount.Store(4)
	if h, err := ping(10 * time.Second); err != nil || h != (callwire.Health{Calls: 4}) {
		t.Fatalf("idle: %+v, %v", h, err)
	}
	s.storeLock <- struct{}{} // a guest call holds the Store
	s.inCall.Store(true)
	if h, err := ping(10 * time.Second); err != nil || h != (callwire.Health{Loaded: true, Calls: 4, Busy: true}) {
		t.Fatalf("in a call: %+v, %v", h, err)
	}
	s.inCall.Store(false) // held outside a guest call (wedged)
	if _, err := ping(50 * time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Store held outside a call: %v, want DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ping(10 * time.Second)
		done <- err
	}()
	s.unlock() // released (while the check waits, or just before): the first, late answer is dropped
	if err := <-done; err != nil {
		t.Fatalf("Store released while the check waits: %v", err)
	}
	if h, err := ping(10 * time.Second); err != nil || h != (callwire.Health{Calls: 4}) {
		t.Fatalf("after: %+v, %v", h, err)
	}
}
