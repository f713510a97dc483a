package callwire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// MaxShimFrameBytes is the longest frame body a shim reads from the host: a call's input (at most
// shared.MaxPayloadBytes) or a host call's result (at most shared.MaxHostCallResultBytes), with
// room for the envelope.
const MaxShimFrameBytes = max(shared.MaxMessageBytes, shared.MaxHostCallResultBytes+1<<20)

// InvokeFunc runs one export call in the shim and calls reply exactly once with its answer. The
// answer's bytes need stay valid only until reply returns (they may be the Store's own memory).
type InvokeFunc func(req *pb.InvokeRequest, reply func(*pb.InvokeResponse))

// ShimEnd is the shim's end of its call connection: it runs the host's export calls and sends
// the guest's host calls. The goroutine that reads a call runs it (see readTurn), and the
// guest's goroutine reads the answers to its host calls itself while no one else reads.
type ShimEnd struct {
	c *Conn

	hostCalls requests[*pb.HostCallResponse]
	turn      *readTurn

	acksMu sync.Mutex
	acks   PublishAcks // receives the answers to Publish frames (SetPublishAcks)
	ended  error       // why the connection ended, once it has

	// handedOff counts the host call answers read by a goroutine other than the one waiting for
	// them (each a hand-off, a wake-up more; tests check it stays rare).
	handedOff atomic.Int64

	// invoke runs the calls; set by Serve before served is closed.
	invoke InvokeFunc
	served chan struct{}

	// ping answers the host's pings (HandlePings); pong is the buffer each Pong is built in.
	ping   PingFunc
	pongMu sync.Mutex
	pong   [HeaderBytes + maxPongBytes]byte
}

type callFrame struct {
	id  uint64
	req *pb.InvokeRequest
}

// NewShimEnd wraps the shim's end of a call connection (FileConn of the inherited descriptor).
func NewShimEnd(c *Conn) *ShimEnd {
	return &ShimEnd{c: c, turn: newReadTurn(), served: make(chan struct{})}
}

// InheritedShimEnd is the shim's end of the call connection whose descriptor the environment
// variable EnvShimCallsFD names.
func InheritedShimEnd() (*ShimEnd, error) {
	c, err := InheritedConn()
	if err != nil {
		return nil, err
	}
	return NewShimEnd(c), nil
}

// Close closes the connection.
func (e *ShimEnd) Close() error { return e.c.Close() }

// PublishAcks receives the host's answers to the Publish frames a shim sends.
type PublishAcks interface {
	// Published is the host's answer to Publish id: nil when it took the whole batch, otherwise
	// the status it refused the batch with (the publications before the refused one were
	// published).
	Published(id uint64, err error)
	// Ended says the connection has ended with err: the Publish frames not answered yet never
	// will be.
	Ended(err error)
}

// SetPublishAcks makes a the receiver of the answers to Publish frames. If the connection has
// ended already, a.Ended is called at once.
func (e *ShimEnd) SetPublishAcks(a PublishAcks) {
	e.acksMu.Lock()
	e.acks = a
	ended := e.ended
	e.acksMu.Unlock()
	if ended != nil {
		a.Ended(ended)
	}
}

// SendPublish sends a batch of the guest's publishes as the Publish frame id; the answer goes
// to the PublishAcks. The caller keeps ids unique and at most MaxPublishesInFlight unanswered.
func (e *ShimEnd) SendPublish(id uint64, req *pb.IpcPublishRequest) error {
	if e == nil {
		return status.Error(codes.FailedPrecondition, "the shim has no call connection to the host")
	}
	return e.c.WriteFrame(Publish, id, req)
}

// SendPublishFrame is SendPublish of a batch already encoded (AppendPublication) after
// HeaderBytes of room for the frame's header: the frame's buffer is the caller's again once it
// returns.
func (e *ShimEnd) SendPublishFrame(id uint64, frame []byte) error {
	if e == nil {
		return status.Error(codes.FailedPrecondition, "the shim has no call connection to the host")
	}
	return e.c.WriteFrameBuffer(Publish, id, frame)
}

func (e *ShimEnd) publishAcks() PublishAcks {
	e.acksMu.Lock()
	defer e.acksMu.Unlock()
	return e.acks
}

// HostCall sends a host call and waits for its answer, or for ctx to end: the host is then told
// (a Cancel frame) and the context's error returned as a gRPC status, as the unary RPC this
// replaces gave. An error answer comes back as the status the host sent. While no other
// goroutine reads the connection (the call that runs the guest gave its turn up), HostCall reads
// the answer itself.
func (e *ShimEnd) HostCall(ctx context.Context, req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
	return e.HostCallAfterPublish(ctx, 0, nil, nil, req)
}

// HostCallAfterPublish is HostCall that sends the Publish frame pubID (a batch encoded as for
// SendPublishFrame; nil for none) just before the host call, in the same write: the host reads
// the batch first, as if it were sent alone, but is woken once for both. sent, if not nil, is
// called once the write is done (with its error), before the answer is awaited: the batch's
// buffer is the caller's again.
func (e *ShimEnd) HostCallAfterPublish(ctx context.Context, pubID uint64, pubFrame []byte, sent func(error), req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
	if e == nil {
		err := status.Error(codes.FailedPrecondition, "the shim has no call connection to the host")
		if sent != nil {
			sent(err)
		}
		return nil, err
	}
	id, ch, err := e.hostCalls.send(func(id uint64) error {
		err := e.c.WriteFrameAfter(pubFrame, Publish, pubID, HostCall, id, req)
		if sent != nil {
			sent(err)
			sent = nil
		}
		return err
	})
	if sent != nil { // the connection had ended: nothing was written
		sent(err)
	}
	if err != nil {
		return nil, err
	}
	cancelled := func(id uint64) { _ = e.c.WriteFrame(Cancel, id, nil) }
	select {
	case a := <-ch:
		return a.resp, a.err
	case <-ctx.Done():
		return e.hostCalls.abandon(ctx, id, cancelled)
	case e.turn.ch <- struct{}{}:
		// No one reads: read until the answer comes.
	}
	for {
		select {
		case a := <-ch:
			e.turn.give()
			return a.resp, a.err
		default:
		}
		kind, fid, body, err := e.c.ReadFrameThread(ctx, MaxShimFrameBytes)
		if errors.Is(err, errInterrupted) {
			e.turn.give()
			return e.hostCalls.abandon(ctx, id, cancelled)
		}
		if err == nil {
			_, err = e.handle(kind, fid, body, func(f callFrame) { go e.answer(f) })
		}
		if err != nil {
			e.end(err) // fails the waiting host calls, this one included
		}
	}
}

// Recycle hands back a host call's result once nothing refers to it any more (the guest has its
// copy): a large one was read into a buffer of its own (resultOnly), which the connection then
// reads a later large frame into.
func (e *ShimEnd) Recycle(result []byte) {
	if e != nil && len(result) >= takeResultBytes {
		e.c.GiveBody(result)
	}
}

// Serve reads the host's frames until the connection ends: calls go to invoke, whose answers are
// sent back; host call answers to the HostCall waiting for them (an answer nobody waits for is
// one to a cancelled host call, and is dropped). It returns why the connection ended; host calls
// still waiting then fail with Unavailable.
func (e *ShimEnd) Serve(invoke InvokeFunc) error {
	e.invoke = invoke
	close(e.served)
	e.read(nil)
	<-e.turn.ended
	return e.turn.endErr
}

// read takes the read turn and reads frames, running each call it reads itself, until the
// connection ends or a takeover reader has started in its place. A takeover reader (handBack not
// nil, see readTurn.runRequest) also returns once it has answered a host call of the guest whose
// call it took over for, if handBack lets it: the guest's goroutine then reads the answers to
// its next host calls itself, one wake-up each rather than two.
func (e *ShimEnd) read(handBack func() bool) {
	if !e.turn.take() {
		return
	}
	for {
		var call *callFrame
		kind, id, body, err := e.c.ReadFrame(MaxShimFrameBytes)
		resumed := false
		if err == nil {
			resumed, err = e.handle(kind, id, body, func(f callFrame) { call = &f })
		}
		if err != nil {
			e.end(err)
			return
		}
		if call != nil {
			if !e.turn.runRequest(func() { e.answer(*call) }, e.read) || !e.turn.take() {
				return
			}
			continue
		}
		if resumed {
			e.handedOff.Add(1)
		}
		if resumed && handBack != nil && !e.c.Buffered() && handBack() {
			e.turn.give()
			return
		}
	}
}

// end ends the connection (once): err says why, the host calls waiting fail with Unavailable.
// The turn stays with the goroutine that ended it: no one reads after.
func (e *ShimEnd) end(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	if e.turn.end(err) {
		e.hostCalls.end(err)
		e.acksMu.Lock()
		e.ended = err
		acks := e.acks
		e.acksMu.Unlock()
		if acks != nil {
			acks.Ended(err)
		}
		e.c.Close()
	}
}

// handle acts on one frame from the host: a call goes to call, an answer to the host call
// waiting for it (resumed: one was). An error ends the connection.
func (e *ShimEnd) handle(kind Kind, id uint64, body []byte, call func(callFrame)) (resumed bool, err error) {
	switch kind {
	case Call:
		req := &pb.InvokeRequest{}
		if err := Decode(kind, body, req); err != nil {
			return false, err
		}
		call(callFrame{id: id, req: req})
	case HostResult, HostError:
		var a answer[*pb.HostCallResponse]
		if kind == HostResult {
			var view bool
			if a.resp, view = resultOnly(body); view {
				e.c.TakeBody() // the result is a view of it
			} else if a.resp == nil {
				a.resp = &pb.HostCallResponse{}
				if err := Decode(kind, body, a.resp); err != nil {
					return false, err
				}
			}
		} else {
			st := &spb.Status{}
			if err := Decode(kind, body, st); err != nil {
				return false, err
			}
			if st.Code == int32(codes.OK) {
				return false, fmt.Errorf("a host error frame for host call %d with status OK", id)
			}
			a.err = status.FromProto(st).Err()
		}
		resumed, _ = e.hostCalls.deliver(id, a) // nobody waits for the answer to a cancelled host call
	case Published:
		var took error // an empty body is status OK (nearly every batch's): nothing to decode
		if len(body) > 0 {
			st := &spb.Status{}
			if err := Decode(kind, body, st); err != nil {
				return false, err
			}
			took = status.FromProto(st).Err()
		}
		acks := e.publishAcks()
		if acks == nil {
			return false, fmt.Errorf("a published frame for publish %d, which this shim never sent", id)
		}
		acks.Published(id, took)
	case Ping:
		if err := e.handlePing(id, body); err != nil {
			return false, err
		}
	default:
		return false, fmt.Errorf("a %s frame, which only the shim sends", kind)
	}
	return resumed, nil
}

// answer runs one call and sends its answer.
func (e *ShimEnd) answer(f callFrame) {
	<-e.served
	e.invoke(f.req, func(resp *pb.InvokeResponse) { _ = e.c.WriteFrame(CallResult, f.id, resp) })
}

// takeResultBytes is the size from which a host call's result is handed on in the frame's own
// buffer (resultOnly) rather than copied out of the connection's reused one: below it, a copy
// costs less than a new buffer for the next frame.
const takeResultBytes = 64 << 10

// resultOnly decodes the body of a HostResult frame that holds only a result, encoded as the host
// writes it (WriteBytesFieldFrame: the field's tag, its length, the bytes, nothing else): the
// form of nearly every answer, decoded here without proto.Unmarshal's reflection. A result of at
// least takeResultBytes is a view of body (view), a smaller one a copy. It returns nil for any
// other body, which proto.Unmarshal then decodes (to the same message, for this one).
func resultOnly(body []byte) (resp *pb.HostCallResponse, view bool) {
	num, typ, n := protowire.ConsumeTag(body)
	if n < 0 || num != fieldHostCallResult || typ != protowire.BytesType {
		return nil, false
	}
	v, m := protowire.ConsumeBytes(body[n:])
	if m < 0 || n+m != len(body) {
		return nil, false
	}
	if len(body) < takeResultBytes {
		return &pb.HostCallResponse{Result: bytes.Clone(v)}, false
	}
	return &pb.HostCallResponse{Result: v}, true
}
