package callwire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/astrid-go/astrid/shared/pb"
)

// lateHost serves a HostEnd whose host calls are all answered later: each call's Late and
// context go to the returned channel. Violations go to the second channel.
func lateHost(t *testing.T) (*Conn, chan lateCall, chan error) {
	t.Helper()
	hc, sc := pair(t)
	host := NewHostEnd(hc)
	host.HandlePublishes(func([]Publication) error { return nil })
	calls := make(chan lateCall, 4)
	violations := make(chan error, 4)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = host.Serve(func(ctx context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
			l := LateAnswer(ctx)
			if l == nil {
				t.Error("LateAnswer: nil for a host call's context")
				return nil, errors.New("no Late")
			}
			if LateAnswer(ctx) != nil {
				t.Error("LateAnswer handed the same call out twice")
			}
			calls <- lateCall{ctx: ctx, l: l, req: req}
			return nil, ErrAnswerLater
		}, func(err error) error { violations <- err; return err })
	}()
	t.Cleanup(func() { host.Close(); <-served })
	return sc, calls, violations
}

// mustWrite writes one frame, as a shim would, failing the test if it cannot.
func mustWrite(t *testing.T, c *Conn, kind Kind, id uint64, m proto.Message) {
	t.Helper()
	if err := c.WriteFrame(kind, id, m); err != nil {
		t.Fatal(err)
	}
}

func frameName(kind Kind, id uint64) string { return fmt.Sprint(kind, " ", id) }

type lateCall struct {
	ctx context.Context
	l   *Late
	req *pb.HostCallRequest
}

// readFrames reads n frames and returns them as "kind id" strings, with the last body.
func readFrames(t *testing.T, c *Conn, n int) (got []string, body []byte) {
	t.Helper()
	for range n {
		kind, id, b, err := c.ReadFrame(MaxShimFrameBytes)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, frameName(kind, id))
		body = bytes.Clone(b)
	}
	return got, body
}

// TestLateAnswer: a host call left to be answered later (ErrAnswerLater) does not hold up the
// connection: the host goes on reading the shim's frames; its answer comes once, whoever
// sends it, after the frames the host held back; a Cancel frame ends its context; a second host
// call while it waits is a violation, as one while a host call runs.
func TestLateAnswer(t *testing.T) {
	batch := func() []byte { return AppendPublication(make([]byte, HeaderBytes), "a.b", []byte("1")) }
	call := &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_IPC_RECV}
	t.Run("answered by another goroutine, once", func(t *testing.T) {
		sc, calls, _ := lateHost(t)
		// A batch and a host call in one write: the batch's answer is held back.
		if err := sc.WriteFrameAfter(batch(), Publish, 1, HostCall, 2, call); err != nil {
			t.Fatal(err)
		}
		c := <-calls
		// The host reads on while the call waits: a batch alone is answered at once, after the
		// answer held back.
		if err := sc.WriteFrameBuffer(Publish, 3, batch()); err != nil {
			t.Fatal(err)
		}
		if got, _ := readFrames(t, sc, 2); got[0] != frameName(Published, 1) || got[1] != frameName(Published, 3) {
			t.Fatalf("frames %v, want the two Published", got)
		}
		// More than the socket takes at once, while the shim does not read: AnswerNoWait returns
		// all the same (the rest goes out on a goroutine of its own), then the frame arrives whole.
		result := bytes.Repeat([]byte("r"), 3<<20)
		answered := c.l.AnswerNoWait(&pb.HostCallResponse{Result: result})
		got, body := readFrames(t, sc, 1)
		want, _ := proto.Marshal(&pb.HostCallResponse{Result: result})
		if got[0] != frameName(HostResult, 2) || !bytes.Equal(body, want) || !answered {
			t.Fatalf("%v with %d bytes, want HostResult 2 with %d", got, len(body), len(want))
		}
		if c.l.Answer(&pb.HostCallResponse{}, nil) || c.l.AnswerNoWait(&pb.HostCallResponse{}) {
			t.Fatal("a second answer was sent")
		}
		if c.ctx.Err() == nil {
			t.Fatal("the call's context is still live after its answer")
		}
		// The next frame is the next batch's answer, not a second answer.
		if err := sc.WriteFrameBuffer(Publish, 4, batch()); err != nil {
			t.Fatal(err)
		}
		if got, _ := readFrames(t, sc, 1); got[0] != frameName(Published, 4) {
			t.Fatalf("frames %v, want Published 4", got)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		sc, calls, violations := lateHost(t)
		mustWrite(t, sc, HostCall, 1, call)
		c := <-calls
		mustWrite(t, sc, Cancel, 1, nil)
		<-c.ctx.Done()
		c.l.Answer(nil, c.ctx.Err())
		got, body := readFrames(t, sc, 1)
		st := &spb.Status{}
		if got[0] != frameName(HostError, 1) || proto.Unmarshal(body, st) != nil || st.Code != int32(codes.FailedPrecondition) {
			t.Fatalf("%v %v, want HostError 1", got, st)
		}
		// The next host call is no violation.
		mustWrite(t, sc, HostCall, 2, call)
		c = <-calls
		c.l.Answer(&pb.HostCallResponse{Result: []byte("x")}, nil)
		if got, _ := readFrames(t, sc, 1); got[0] != frameName(HostResult, 2) {
			t.Fatalf("%v, want HostResult 2", got)
		}
		select {
		case err := <-violations:
			t.Fatalf("violation: %v", err)
		default:
		}
	})
	t.Run("a second host call while one waits", func(t *testing.T) {
		sc, calls, violations := lateHost(t)
		mustWrite(t, sc, HostCall, 1, call)
		c := <-calls
		mustWrite(t, sc, HostCall, 2, call)
		if err := <-violations; err == nil {
			t.Fatal("no violation")
		}
		<-c.ctx.Done() // the connection's end cancels the waiting call
		c.l.Answer(nil, c.ctx.Err())
	})
	t.Run("a cancelled call's id used again", func(t *testing.T) {
		// A hostile shim cancels host call 1 and sends a new host call 1 before the old one is
		// answered: the old one's answer must not end the new one, which still counts as in
		// progress (a third call while it waits is a violation).
		sc, calls, violations := lateHost(t)
		mustWrite(t, sc, HostCall, 1, call)
		old := <-calls
		mustWrite(t, sc, Cancel, 1, nil)
		<-old.ctx.Done()
		mustWrite(t, sc, HostCall, 1, call)
		again := <-calls
		old.l.Answer(nil, old.ctx.Err())
		if got, _ := readFrames(t, sc, 1); got[0] != frameName(HostError, 1) {
			t.Fatalf("%v, want the old call's HostError 1", got)
		}
		mustWrite(t, sc, HostCall, 2, call)
		select {
		case err := <-violations:
			if err == nil {
				t.Fatal("a nil violation")
			}
		case c := <-calls:
			c.l.Answer(nil, errors.New("refused"))
			t.Fatal("host call 2 was run while the new host call 1 was in progress")
		}
		<-again.ctx.Done()
		again.l.Answer(nil, again.ctx.Err())
	})
}

// TestLateOnCancel: the function a parked host call registers runs once the call is cancelled,
// by the shim's Cancel frame or the connection's end, or at once when it was cancelled already;
// the last registration is the one that runs.
func TestLateOnCancel(t *testing.T) {
	call := &pb.HostCallRequest{Op: pb.HostOp_HOST_OP_IPC_RECV}
	ran := func() (func(), chan string) {
		ch := make(chan string, 1)
		return func() { ch <- "ran" }, ch
	}
	for _, tc := range []struct {
		name   string
		cancel func(t *testing.T, sc *Conn, c lateCall)
		before bool // cancel before OnCancel
	}{
		{"Cancel frame", func(t *testing.T, sc *Conn, c lateCall) {
			mustWrite(t, sc, Cancel, 1, nil)
		}, false},
		{"connection's end", func(t *testing.T, sc *Conn, c lateCall) { sc.Close() }, false},
		{"cancelled already", func(t *testing.T, sc *Conn, c lateCall) {
			mustWrite(t, sc, Cancel, 1, nil)
			<-c.ctx.Done()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, calls, _ := lateHost(t)
			mustWrite(t, sc, HostCall, 1, call)
			c := <-calls
			if tc.before {
				tc.cancel(t, sc, c)
			}
			f, fRan := ran()
			g, gRan := ran()
			c.l.OnCancel(f)
			if !tc.before {
				c.l.OnCancel(nil)
				c.l.OnCancel(g) // replaces f
				tc.cancel(t, sc, c)
				<-gRan
				if len(fRan) != 0 {
					t.Fatal("a replaced function ran")
				}
				return
			}
			<-fRan
		})
	}
}
