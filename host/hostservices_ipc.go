package host

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/shared/pb"
)

// maxRecvTimeout is the longest recv wait a shim may ask for: 60 s (the shim clamps the guest's).
const maxRecvTimeout = 60_000

// The IPC host functions. The shim has already checked each request exactly as below, so a
// refusal here means the shim is not behaving: the instance is stopped as compromised.

// IpcPublish publishes the guest's messages, in order, after checking each one against the
// capsule's ACL and quota. Messages before a refused one are published.
func (s *hostServices) IpcPublish(_ context.Context, req *pb.IpcPublishRequest) (*pb.IpcPublishResponse, error) {
	if err := s.publish(req.Messages); err != nil {
		return nil, err
	}
	return &pb.IpcPublishResponse{}, nil
}

// publish checks and publishes a batch of the guest's messages, in order.
func (s *hostServices) publish(pubs []*pb.IpcPublication) error {
	ipc := s.inst.ipc
	msgs := make([]bus.Message, 0, len(pubs))
	var refusal error
	for _, p := range pubs {
		if err := s.checkPublish(p); err != nil {
			refusal = fmt.Errorf("publish to %q: %w", p.Topic, err)
			break
		}
		payload, err := bus.PayloadFromGuest(p.Payload)
		if err != nil {
			refusal = fmt.Errorf("publish to %q: %w", p.Topic, err)
			break
		}
		msgs = append(msgs, bus.Message{Topic: p.Topic, Payload: payload, SourceID: ipc.sourceID, Principal: ipc.principal})
	}
	if len(msgs) > 0 {
		s.inst.host.bus.PublishBatch(msgs)
	}
	if refusal != nil {
		return s.inst.compromised(refusal)
	}
	return nil
}

// checkPublish applies upstream's publish checks, in upstream's order.
func (s *hostServices) checkPublish(p *pb.IpcPublication) error {
	if len(p.Topic) > bus.MaxTopicBytes {
		return fmt.Errorf("Topic exceeds maximum allowed length (256 bytes)")
	}
	if err := s.inst.ipc.limiter.Charge(len(p.Payload)); err != nil {
		return err
	}
	if err := bus.CheckPublishTopic(p.Topic); err != nil {
		return err
	}
	return bus.CheckPublishACL(s.inst.ID(), p.Topic, s.inst.manifest.Capabilities.IPCPublish)
}

// IpcSubscribe subscribes the capsule to a pattern its ipc_subscribe ACL covers.
func (s *hostServices) IpcSubscribe(_ context.Context, req *pb.IpcSubscribeRequest) (*pb.IpcSubscribeResponse, error) {
	if err := bus.CheckSubscribePattern(req.Pattern); err != nil {
		return nil, s.inst.compromised(fmt.Errorf("subscribe to %q: %w", req.Pattern, err))
	}
	if err := bus.CheckSubscribeACL(s.inst.ID(), req.Pattern, s.inst.manifest.Capabilities.IPCSubscribe); err != nil {
		return nil, s.inst.compromised(fmt.Errorf("subscribe to %q: %w", req.Pattern, err))
	}
	h, err := s.inst.ipc.add(s.inst.host.bus, req.Pattern)
	switch {
	case err == nil:
		return &pb.IpcSubscribeResponse{Handle: h}, nil
	case err.Error() == bus.ErrTextHandleCollision:
		// A shim cannot foresee a collision after 2^64 subscriptions: an ordinary refusal.
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	default:
		return nil, s.inst.compromised(fmt.Errorf("subscribe to %q: %w", req.Pattern, err))
	}
}

// IpcUnsubscribe ends one of the capsule's own subscriptions.
func (s *hostServices) IpcUnsubscribe(_ context.Context, req *pb.IpcHandle) (*pb.IpcUnsubscribeResponse, error) {
	if err := s.inst.ipc.remove(req.Handle); err != nil {
		return nil, s.inst.compromised(fmt.Errorf("unsubscribe %d: %w", req.Handle, err))
	}
	return &pb.IpcUnsubscribeResponse{}, nil
}

// IpcPoll drains one of the capsule's subscriptions without waiting.
func (s *hostServices) IpcPoll(_ context.Context, req *pb.IpcHandle) (*pb.IpcEnvelope, error) {
	sub, ok := s.inst.ipc.get(req.Handle)
	if !ok {
		return nil, s.inst.compromised(fmt.Errorf("poll %d: %s", req.Handle, bus.ErrTextHandleNotFound))
	}
	return envelope(sub.Poll(envelopeBytes))
}

// IpcRecv waits for a message on one of the capsule's subscriptions. A timeout, the shim
// cancelling the call (its capsule is unloading) and the subscription closing all answer with an
// empty envelope.
func (s *hostServices) IpcRecv(ctx context.Context, req *pb.IpcRecvRequest) (*pb.IpcEnvelope, error) {
	sub, ok := s.inst.ipc.get(req.Handle)
	if !ok {
		return nil, s.inst.compromised(fmt.Errorf("recv %d: %s", req.Handle, bus.ErrTextHandleNotFound))
	}
	if req.TimeoutMs > maxRecvTimeout {
		return nil, s.inst.compromised(fmt.Errorf("recv %d: a timeout of %d ms (the shim clamps it to %d)", req.Handle, req.TimeoutMs, maxRecvTimeout))
	}
	if err := s.publish(req.PublishFirst); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
	defer cancel()
	env, _ := sub.Recv(ctx, envelopeBytes)
	return envelope(env)
}

func envelope(env bus.Envelope) (*pb.IpcEnvelope, error) {
	data, err := env.MarshalJSON()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to serialize IPC messages: %v", err)
	}
	return &pb.IpcEnvelope{Json: data}, nil
}

// SignalReady records that a run-loop capsule is ready for messages (astrid_signal_ready).
func (s *hostServices) SignalReady(context.Context, *pb.SignalReadyRequest) (*pb.SignalReadyResponse, error) {
	s.inst.readyOnce.Do(func() { close(s.inst.ready) })
	return &pb.SignalReadyResponse{}, nil
}
