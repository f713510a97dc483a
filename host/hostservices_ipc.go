package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
)

// The IPC host functions. The shim has already checked each request with the same guard (package
// bus/guard) on the same configuration, so a refusal by the guard here means the shim is not
// behaving: the instance is stopped as compromised. Only what a correct shim cannot foresee (the
// capsule unloading meanwhile, a handle collision after 2^64 subscriptions) is an ordinary error.

func init() {
	for op, f := range map[pb.HostOp]func(*hostServices, context.Context, [][]byte) ([]byte, error){
		pb.HostOp_HOST_OP_IPC_SUBSCRIBE:   (*hostServices).ipcSubscribe,
		pb.HostOp_HOST_OP_IPC_UNSUBSCRIBE: (*hostServices).ipcUnsubscribe,
		pb.HostOp_HOST_OP_IPC_POLL:        (*hostServices).ipcPoll,
		pb.HostOp_HOST_OP_IPC_RECV:        (*hostServices).ipcRecv,
		pb.HostOp_HOST_OP_SIGNAL_READY:    (*hostServices).signalReady,
	} {
		hostCallHandlers[op] = func(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) { return f(s, ctx, args) }
	}
}

// publishFrame publishes the batch of one Publish frame of the instance's call connection
// (callwire.HostEnd.HandlePublishes). Messages before a refused one are published. What the bus
// did not take is not the frame's answer: the shim does not wait for answers (only counts them,
// to bound what is in flight), so the host reports it itself, at the instance's next host call
// or at the end of its export call (instanceIPC.takeNotTaken), once.
func (s *hostServices) publishFrame(pubs []callwire.Publication) error {
	return s.publish(pubs)
}

// publish checks and publishes a batch of the guest's messages, in order, from one frame at a
// time (the messages are built in s.batch). They carry the
// instance's effective principal: during an interceptor invocation, the principal of the
// message it handles (the shim sends a call's publishes before it answers the call, so a batch
// never straddles two calls). A refusal by the guard stops the instance as compromised; a
// refusal by the link to other hosts is recorded for the guest's next host call, with the exact
// number of messages not published.
func (s *hostServices) publish(pubs []callwire.Publication) error {
	msgs := s.batch[:0]
	defer func() {
		clear(msgs) // no payload outlives its queues through this slice
		s.batch = msgs[:0]
	}()
	var refusal error
	principal := s.inst.effectivePrincipal()
	topic := ""
	now := s.inst.ipc.guard.Now() // the frame's messages are charged at one instant
	for _, p := range pubs {
		if string(p.Topic) != topic { // consecutive publishes to one topic share its string
			topic = string(p.Topic)
		}
		m, err := s.inst.ipc.admit(topic, p.Payload, now)
		if err != nil {
			refusal = fmt.Errorf("publish to %q: %w", topic, err)
			break
		}
		m.Principal = principal
		msgs = append(msgs, m)
	}
	var linkErr error
	published := 0
	if len(msgs) > 0 {
		published, linkErr = s.inst.host.bus.PublishShared(msgs)
	}
	s.recordHostCall("astrid_ipc_publish", len(msgs)+failedIf(refusal), failedIf(refusal))
	if refusal != nil {
		return s.inst.compromised(refusal)
	}
	if linkErr != nil {
		// The link to other hosts could not take them (docs/architecture.md#the-bus-across-hosts):
		// an ordinary error, which the guest's next host call gets; they were delivered nowhere.
		s.inst.host.log.Warn("bus: publishes refused", "capsule", s.inst.ID(), "refused_total", s.inst.host.bus.Refused(), "error", linkErr)
		s.inst.ipc.notTaken(len(pubs)-published, "publish: "+linkErr.Error()) // the bus's text names the link
	}
	return nil
}

// ipcSubscribe subscribes the capsule to a pattern its ipc_subscribe ACL covers; the result is
// the handle (shared.IPCUint).
func (s *hostServices) ipcSubscribe(_ context.Context, args [][]byte) ([]byte, error) {
	h, err := s.inst.ipc.subscribe(s.inst.host.bus, string(args[0]))
	if err != nil {
		return nil, s.refuse(fmt.Errorf("subscribe to %q: %w", args[0], err))
	}
	return shared.IPCUint(h), nil
}

// ipcUnsubscribe ends one of the capsule's own subscriptions.
func (s *hostServices) ipcUnsubscribe(_ context.Context, args [][]byte) ([]byte, error) {
	h, err := s.ipcHandle(args[0])
	if err != nil {
		return nil, err
	}
	if err := s.inst.ipc.unsubscribe(h); err != nil {
		return nil, s.refuse(fmt.Errorf("unsubscribe %d: %w", h, err))
	}
	return nil, nil
}

// ipcPoll drains one of the capsule's subscriptions without waiting: the envelope JSON.
func (s *hostServices) ipcPoll(_ context.Context, args [][]byte) ([]byte, error) {
	h, err := s.ipcHandle(args[0])
	if err != nil {
		return nil, err
	}
	env, err := s.inst.ipc.poll(h, envelopeBytes, s.msgBuf.take())
	if err != nil {
		return nil, s.refuse(fmt.Errorf("poll %d: %w", h, err))
	}
	return s.envelopeJSON(env), nil
}

// ipcRecv waits for a message on one of the capsule's subscriptions: the envelope JSON. A
// timeout, the shim cancelling the call (its capsule is unloading) and the subscription closing
// all answer with an empty envelope. The shim sent the guest's pending publishes before, and
// the host published them before it read this request.
func (s *hostServices) ipcRecv(ctx context.Context, args [][]byte) ([]byte, error) {
	h, err := s.ipcHandle(args[0])
	if err != nil {
		return nil, err
	}
	timeoutMs, err := shared.ParseIPCUint("timeout_ms", args[1])
	if err != nil {
		return nil, s.inst.compromised(err)
	}
	if err := s.inst.ipc.guard.CheckRecv(h, timeoutMs); err != nil {
		return nil, s.refuse(fmt.Errorf("recv %d: %w", h, err))
	}
	if _, err := s.inst.ipc.get(h); err != nil {
		return nil, s.refuse(fmt.Errorf("recv %d: %w", h, err))
	}
	timeout := time.Duration(timeoutMs) * time.Millisecond
	into := s.msgBuf.take()
	if env, got, parked := s.recvOrPark(ctx, h, timeout, into); got {
		return s.envelopeJSON(env), nil
	} else if parked {
		return nil, callwire.ErrAnswerLater
	}
	callwire.MayWait(ctx) // it waits here: another goroutine reads the shim's frames meanwhile
	return s.recvWait(ctx, h, timeout, into)
}

// recvWait is a recv that waits in the goroutine that runs it (instanceIPC.recv).
func (s *hostServices) recvWait(ctx context.Context, h uint64, timeout time.Duration, into []bus.Message) ([]byte, error) {
	env, err := s.inst.ipc.recv(ctx, h, envelopeBytes, timeout, into)
	if err != nil {
		return nil, s.refuse(fmt.Errorf("recv %d: %w", h, err))
	}
	return s.envelopeJSON(env), nil
}

// envelopeJSON encodes a poll's or recv's envelope into the instance's envelope buffer and takes
// back the slice its messages were drained into.
func (s *hostServices) envelopeJSON(env bus.Envelope) []byte {
	out := env.AppendJSON(s.envBuf.take())
	clear(env.Messages) // no payload outlives its envelope through the slice
	s.msgBuf.give(env.Messages, keepEnvelopeMessages)
	return out
}

// keepEnvelopeBuffer is the largest envelope buffer an instance keeps between polls and recvs:
// a larger one (up to 10 MiB) is let go after use rather than held for the instance's life.
const keepEnvelopeBuffer = 1 << 20

// keepEnvelopeMessages is the most messages an instance's reused envelope slice keeps room for:
// a subscription's whole queue (bus.DefaultQueueMessages).
const keepEnvelopeMessages = bus.DefaultQueueMessages

// reusable is one instance's reusable buffer of a poll's or recv's envelope: its JSON
// (envBuf: encoding each envelope in a fresh buffer made the host allocate, and the garbage
// collector and the kernel clear, about a message's JSON for every message delivered) and its
// messages (msgBuf: the slice the bus drains into, dropped once the JSON is written). take hands
// the buffer out, empty; give takes it back once used (the JSON once the answer carrying it is
// sent, answered). While it is out (a second host call after the shim cancelled one) take
// returns nil, and that envelope gets a buffer of its own.
type reusable[T any] struct {
	mu   sync.Mutex
	free []T
}

// envelopeBuffer is the reusable buffer of envelope JSON.
type envelopeBuffer = reusable[byte]

// take returns the free buffer, emptied, or nil when it is out.
func (b *reusable[T]) take() []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	buf := b.free[:0]
	b.free = nil
	return buf
}

// give returns a buffer that take handed out (or that grew from one), unless its capacity is
// more than keep or a buffer is free already.
func (b *reusable[T]) give(buf []T, keep int) {
	if cap(buf) == 0 || cap(buf) > keep {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free == nil {
		b.free = buf[:0]
	}
}

// answered takes back the envelope buffer of a poll or recv once its answer is sent
// (callwire.HostEnd.HandleAnswered).
func (s *hostServices) answered(req *pb.HostCallRequest, resp *pb.HostCallResponse) {
	switch req.Op {
	case pb.HostOp_HOST_OP_IPC_POLL, pb.HostOp_HOST_OP_IPC_RECV:
		if !resp.GetFailed() {
			s.envBuf.give(resp.GetResult(), keepEnvelopeBuffer)
		}
	}
}

// ipcHandle decodes a handle block; a correct shim always sends 8 bytes.
func (s *hostServices) ipcHandle(b []byte) (uint64, error) {
	h, err := shared.ParseIPCUint("handle", b)
	if err != nil {
		return 0, s.inst.compromised(err)
	}
	return h, nil
}

// refuse answers a refused IPC request: an ordinary error for what a correct shim cannot
// foresee, a compromise verdict for what its own guard would have refused.
func (s *hostServices) refuse(err error) error {
	switch {
	case errors.Is(err, errUnloading), errors.Is(err, errBusRefused):
		return status.Error(codes.Unavailable, err.Error())
	case guard.IsOrdinary(err):
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return s.inst.compromised(err)
}

// signalReady records that a run-loop capsule is ready for messages (astrid_signal_ready).
func (s *hostServices) signalReady(context.Context, [][]byte) ([]byte, error) {
	s.inst.readyOnce.Do(func() { close(s.inst.ready) })
	return nil, nil
}
