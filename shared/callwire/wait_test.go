package callwire

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestReadFrameThreadWaits: a guest's wait for a frame (ReadFrameThread) ends with the frame,
// whether it keeps the P for the whole wait (keepP longer than any test), gives it up at once
// (keepP 0: the ordinary system call), or is interrupted; a cancelled context interrupts it in
// either part, and so does the connection's Close. The frame's writer and the canceller run on
// goroutines of their own, before or during the wait: every order must end the same way.
func TestReadFrameThreadWaits(t *testing.T) {
	for _, keepP := range []time.Duration{0, time.Hour} {
		for _, tc := range []struct {
			name string
			act  func(host, shim *Conn, cancel context.CancelFunc)
			want error // nil: the frame arrives
		}{
			{"frame already there", func(host, _ *Conn, _ context.CancelFunc) {
				if err := host.WriteFrame(HostResult, 7, &pb.HostCallResponse{Result: []byte("r")}); err != nil {
					t.Error(err)
				}
			}, nil},
			{"frame during the wait", func(host, _ *Conn, _ context.CancelFunc) {
				go func() {
					if err := host.WriteFrame(HostResult, 7, &pb.HostCallResponse{Result: []byte("r")}); err != nil {
						t.Error(err)
					}
				}()
			}, nil},
			{"context cancelled", func(_, _ *Conn, cancel context.CancelFunc) { go cancel() }, errInterrupted},
			{"connection closed", func(_, shim *Conn, _ context.CancelFunc) { go shim.Close() }, errAny},
		} {
			t.Run(keepP.String()+"/"+tc.name, func(t *testing.T) {
				host, shim := pair(t)
				if shim.waiter == nil {
					t.Fatal("a socket's Conn has no waiter")
				}
				shim.waiter.keepP = keepP
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				tc.act(host, shim, cancel)
				kind, id, body, err := shim.ReadFrameThread(ctx, MaxShimFrameBytes)
				switch {
				case tc.want == nil && err != nil:
					t.Fatalf("ReadFrameThread: %v", err)
				case tc.want == nil:
					var resp pb.HostCallResponse
					if kind != HostResult || id != 7 || Decode(kind, body, &resp) != nil || string(resp.Result) != "r" {
						t.Fatalf("ReadFrameThread: %s %d %q", kind, id, body)
					}
				case tc.want == errAny && err == nil, tc.want != errAny && !errors.Is(err, tc.want):
					t.Fatalf("ReadFrameThread: %v, want %v", err, tc.want)
				}
			})
		}
	}
}

// errAny stands for any error in a table of wanted errors.
var errAny = errors.New("any error")

// TestPollRawZero: pollRaw with no time to wait makes no system call and reports no event, so
// the caller waits the ordinary way.
func TestPollRawZero(t *testing.T) {
	if pollRaw(nil, 0) {
		t.Fatal("pollRaw(nil, 0) reported an event")
	}
}

// TestWaiterWatchesContexts: the waits under one context share one registration with it; once
// that context has ended every wait under it is interrupted, however many; and moving on to the
// next context leaves no wake-up of the old one behind (the eventfd is drained), so its first
// wait waits for its frame.
func TestWaiterWatchesContexts(t *testing.T) {
	host, shim := pair(t)
	frame := func(id uint64) {
		if err := host.WriteFrame(HostResult, id, &pb.HostCallResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	for id := range uint64(3) {
		frame(id)
		if _, got, _, err := shim.ReadFrameThread(ctx1, MaxShimFrameBytes); err != nil || got != id {
			t.Fatalf("frame %d under the first context: %d, %v", id, got, err)
		}
	}
	w := shim.waiter
	cancel1() // while no wait runs: the eventfd is written
	for range 2 {
		if _, _, _, err := shim.ReadFrameThread(ctx1, MaxShimFrameBytes); !errors.Is(err, errInterrupted) {
			t.Fatalf("a wait under the ended context: %v, want errInterrupted", err)
		}
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w.watch(ctx2)
	if w.stopWatched == nil || w.watched != ctx2.Done() {
		t.Fatal("the second context is not the one watched")
	}
	var b [8]byte
	if err := w.wakeRC.Read(func(efd uintptr) bool {
		_, err := unix.Read(int(efd), b[:])
		if !errors.Is(err, unix.EAGAIN) {
			t.Errorf("the eventfd after the next context's watch began: %v, want EAGAIN (drained)", err)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	frame(9)
	if _, got, _, err := shim.ReadFrameThread(ctx2, MaxShimFrameBytes); err != nil || got != 9 {
		t.Fatalf("the frame under the second context: %d, %v", got, err)
	}
}
