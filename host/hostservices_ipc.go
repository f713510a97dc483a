package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/shared/pb"
)

// The IPC host functions. The shim has already checked each request with the same guard (package
// bus/guard) on the same configuration, so a refusal by the guard here means the shim is not
// behaving: the instance is stopped as compromised. Only what a correct shim cannot foresee (the
// capsule unloading meanwhile, a handle collision after 2^64 subscriptions) is an ordinary error.

// IpcPublish publishes the guest's messages, in order, after checking each one with the
// capsule's guard. Messages before a refused one are published.
func (s *hostServices) IpcPublish(_ context.Context, req *pb.IpcPublishRequest) (*pb.IpcPublishResponse, error) {
	if err := s.publish(req.Messages); err != nil {
		return nil, err
	}
	return &pb.IpcPublishResponse{}, nil
}

// publish checks and publishes a batch of the guest's messages, in order. They carry the
// instance's effective principal: during an interceptor invocation, the principal of the
// message it handles (the shim sends a call's publishes before it answers the call, so a batch
// never straddles two calls).
func (s *hostServices) publish(pubs []*pb.IpcPublication) error {
	msgs := make([]bus.Message, 0, len(pubs))
	var refusal error
	principal := s.inst.effectivePrincipal()
	for _, p := range pubs {
		m, err := s.inst.ipc.admit(p)
		if err != nil {
			refusal = fmt.Errorf("publish to %q: %w", p.Topic, err)
			break
		}
		m.Principal = principal
		msgs = append(msgs, m)
	}
	var linkErr error
	if len(msgs) > 0 {
		_, linkErr = s.inst.host.bus.PublishShared(msgs)
	}
	s.recordHostCall("astrid_ipc_publish", len(msgs)+failedIf(refusal), failedIf(refusal))
	if refusal != nil {
		return s.inst.compromised(refusal)
	}
	if linkErr != nil {
		// The link to other hosts could not take them (docs/architecture.md#the-bus-across-hosts):
		// an ordinary error, which the guest's call gets; they were delivered nowhere.
		s.inst.host.log.Warn("bus: publishes refused", "capsule", s.inst.ID(), "refused_total", s.inst.host.bus.Refused(), "error", linkErr)
		return status.Error(codes.Unavailable, busRefusal("publish", linkErr).Error())
	}
	return nil
}

// IpcSubscribe subscribes the capsule to a pattern its ipc_subscribe ACL covers.
func (s *hostServices) IpcSubscribe(_ context.Context, req *pb.IpcSubscribeRequest) (_ *pb.IpcSubscribeResponse, err error) {
	defer func() { s.recordHostCall("astrid_ipc_subscribe", 1, failedIf(err)) }()
	h, err := s.inst.ipc.subscribe(s.inst.host.bus, req.Pattern)
	if err != nil {
		return nil, s.refuse(fmt.Errorf("subscribe to %q: %w", req.Pattern, err))
	}
	return &pb.IpcSubscribeResponse{Handle: h}, nil
}

// IpcUnsubscribe ends one of the capsule's own subscriptions.
func (s *hostServices) IpcUnsubscribe(_ context.Context, req *pb.IpcHandle) (_ *pb.IpcUnsubscribeResponse, err error) {
	defer func() { s.recordHostCall("astrid_ipc_unsubscribe", 1, failedIf(err)) }()
	if err := s.inst.ipc.unsubscribe(req.Handle); err != nil {
		return nil, s.refuse(fmt.Errorf("unsubscribe %d: %w", req.Handle, err))
	}
	return &pb.IpcUnsubscribeResponse{}, nil
}

// IpcPoll drains one of the capsule's subscriptions without waiting.
func (s *hostServices) IpcPoll(_ context.Context, req *pb.IpcHandle) (_ *pb.IpcEnvelope, err error) {
	defer func() { s.recordHostCall("astrid_ipc_poll", 1, failedIf(err)) }()
	env, err := s.inst.ipc.poll(req.Handle, envelopeBytes)
	if err != nil {
		return nil, s.refuse(fmt.Errorf("poll %d: %w", req.Handle, err))
	}
	return envelope(env)
}

// IpcRecv publishes the guest's pending messages, then waits for a message on one of the
// capsule's subscriptions. A timeout, the shim cancelling the call (its capsule is unloading) and
// the subscription closing all answer with an empty envelope.
func (s *hostServices) IpcRecv(ctx context.Context, req *pb.IpcRecvRequest) (_ *pb.IpcEnvelope, err error) {
	defer func() { s.recordHostCall("astrid_ipc_recv", 1, failedIf(err)) }()
	if err := s.inst.ipc.guard.CheckRecv(req.Handle, req.TimeoutMs); err != nil {
		return nil, s.refuse(fmt.Errorf("recv %d: %w", req.Handle, err))
	}
	if err := s.publish(req.PublishFirst); err != nil {
		return nil, err
	}
	if _, err := s.inst.ipc.get(req.Handle); err != nil {
		return nil, s.refuse(fmt.Errorf("recv %d: %w", req.Handle, err))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
	defer cancel()
	env, err := s.inst.ipc.recv(ctx, req.Handle, envelopeBytes)
	if err != nil {
		return nil, s.refuse(fmt.Errorf("recv %d: %w", req.Handle, err))
	}
	return envelope(env)
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

func envelope(env bus.Envelope) (*pb.IpcEnvelope, error) {
	data, err := env.MarshalJSON()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to serialize IPC messages: %v", err)
	}
	return &pb.IpcEnvelope{Json: data}, nil
}

// SignalReady records that a run-loop capsule is ready for messages (astrid_signal_ready).
func (s *hostServices) SignalReady(context.Context, *pb.SignalReadyRequest) (*pb.SignalReadyResponse, error) {
	s.recordHostCall("astrid_signal_ready", 1, 0)
	s.inst.readyOnce.Do(func() { close(s.inst.ready) })
	return &pb.SignalReadyResponse{}, nil
}
