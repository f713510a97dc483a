package callwire

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestSysReaderSpin: a read given a spin polls the pipe before it waits in the netpoller. Bytes
// written while it polls are read without a wait; after the budget it waits as any read does;
// the Conn's Close and an interrupted read end the polling at once rather than after the budget
// (a budget of minutes here: a spin that ignored them would hold the test until it timed out).
func TestSysReaderSpin(t *testing.T) {
	const long = 10 * time.Minute
	tests := []struct {
		name      string
		spin      time.Duration
		act       func(t *testing.T, w, r *Conn, cancel context.CancelFunc)
		wantErr   error
		wantParks int64
	}{
		{"bytes written while it spins", long, func(t *testing.T, w, r *Conn, _ context.CancelFunc) {
			writeFrame(t, w)
		}, nil, 0},
		{"after the budget it waits in the netpoller", time.Millisecond, func(t *testing.T, w, r *Conn, _ context.CancelFunc) {
			for r.sr.parks.Load() == 0 {
				runtime.Gosched()
			}
			writeFrame(t, w)
		}, nil, 1},
		{"its Conn's Close", long, func(t *testing.T, w, r *Conn, _ context.CancelFunc) {
			r.Close()
		}, net.ErrClosed, 1},
		{"its context's end", long, func(t *testing.T, w, r *Conn, cancel context.CancelFunc) {
			cancel()
		}, errInterrupted, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, r := pair(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			reads := r.readsUnder(ctx)
			defer reads.close()
			errc := make(chan error, 1)
			r.sr.spin = tc.spin
			go func() {
				_, _, _, err := reads.ReadFrame(1 << 10)
				errc <- err
			}()
			for r.sr.polls.Load() == 0 { // (it spins: it found nothing at least once)
				runtime.Gosched()
			}
			tc.act(t, w, r, cancel)
			err := <-errc
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("read: %v, want %v", err, tc.wantErr)
			}
			if got := r.sr.parks.Load(); got != tc.wantParks {
				t.Fatalf("the read waited in the netpoller %d times, want %d", got, tc.wantParks)
			}
		})
	}
}

func writeFrame(t *testing.T, w *Conn) {
	t.Helper()
	if err := w.WriteFrame(Ping, 1, nil); err != nil {
		t.Fatal(err)
	}
}

// TestInvokeSpinsWhileShimRuns: an Invoke that reads its own answer polls while the guest runs
// (the answer comes soon), and not while the guest waits for a host call of its that is parked
// (a recv: the answer may be minutes away; polling would only burn the host's CPU).
func TestInvokeSpinsWhileShimRuns(t *testing.T) {
	type parked struct {
		l            *Late
		polls, parks int64
	}
	var sr *sysReader // the host's reader (set before the ends serve)
	calls := make(chan parked, 1)
	e := newEndpoints(t, func(ctx context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		// Run by the Invoke's reader (its context cannot end), before it reads again.
		l := LateAnswer(ctx)
		calls <- parked{l, sr.polls.Load(), sr.parks.Load()}
		return nil, ErrAnswerLater
	}, func(s *ShimEnd, req *pb.InvokeRequest) *pb.InvokeResponse {
		if req.Export != "recv" {
			return &pb.InvokeResponse{}
		}
		for sr.polls.Load() == 0 { // the host polls while this guest runs
			runtime.Gosched()
		}
		resp, err := s.HostCall(context.Background(), &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_IPC_RECV})
		if err != nil {
			return &pb.InvokeResponse{Error: &pb.GuestError{Message: err.Error()}}
		}
		return &pb.InvokeResponse{Output: resp.Result}
	}, func(e *endpoints) { sr = e.host.c.sr })
	// The first call's answer is read by Serve's goroutine (it holds the turn from the start);
	// from then on the Invoke reads its own.
	if _, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "first"}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp *pb.InvokeResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.host.Invoke(context.Background(), &pb.InvokeRequest{Export: "recv"})
		done <- result{resp, err}
	}()
	p := <-calls
	for sr.parks.Load() == p.parks { // the read after the parked host call waits
		runtime.Gosched()
	}
	if polls := sr.polls.Load(); polls != p.polls {
		t.Errorf("the host polled %d times while the guest waited for its parked host call", polls-p.polls)
	}
	p.l.Answer(&pb.HostCallResponse{Result: []byte("message")}, nil)
	if r := <-done; r.err != nil || string(r.resp.Output) != "message" {
		t.Fatalf("the call: %v %v", r.resp, r.err)
	}
}
