package host

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/elicit"
	"github.com/astrid-go/astrid/host/secretstore"
	"github.com/astrid-go/astrid/shared/pb"
)

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_ELICIT] = elicitValue
	hostCallHandlers[pb.HostOp_HOST_OP_HAS_SECRET] = hasSecret
}

// elicitTimeout is how long astrid_elicit waits for its answer: 120 s (upstream's
// MAX_ELICIT_TIMEOUT_MS). A variable so tests can shorten it.
var elicitTimeout = elicit.Timeout

// elicitValue: astrid_elicit(request) -> {"value"} | {"ok": true} | {"values"}, upstream's
// astrid_elicit_impl. Only while the instance runs a lifecycle hook (install, upgrade); else, and
// for a bad request, the call traps with upstream's text. It subscribes to
// astrid.v1.elicit.response.<uuid>, publishes the ElicitRequest on astrid.v1.elicit, and waits
// for the answer at most elicitTimeout; the capsule unloading (the shim cancels the call) ends
// the wait at once. A secret is stored in the secret store under the capsule's name and never
// returned or logged.
func elicitValue(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	req, field, err := elicit.ParseRequest(args[0])
	if err != nil {
		return nil, guestFailed("%s", err.Error())
	}
	if s.inst.Lifecycle() == LifecycleNone {
		return nil, guestFailed("%s", elicit.ErrNotInLifecycle)
	}
	id := uuid.New()
	sub := s.inst.host.bus.Subscribe(elicit.ResponseTopic(id))
	defer sub.Close()
	payload, err := elicit.RequestPayload(id, s.inst.ID(), field)
	if err != nil {
		return nil, err
	}
	s.inst.host.bus.Publish(bus.Message{Topic: elicit.TopicRequest, Payload: payload, SourceID: hostSourceID})
	s.inst.log.Debug("published elicit request, waiting for response", "key", req.Key, "kind", req.Kind, "request_id", id.String())

	wait, cancel := context.WithTimeout(ctx, elicitTimeout)
	defer cancel()
	env, err := sub.Recv(wait, elicit.MaxResponseBytes)
	if err != nil || len(env.Messages) == 0 {
		return nil, guestFailed("%s", elicit.ErrNoAnswer)
	}
	ans, err := elicit.ParseResponse(env.Messages[0].Payload)
	if err != nil {
		return nil, guestFailed("%s", err.Error())
	}
	if req.Kind == elicit.KindSecret {
		if ans.Value == nil || *ans.Value == "" {
			return nil, guestFailed("%s", elicit.ErrEmptySecret)
		}
		if s.inst.host.cfg.StateDir == "" {
			return nil, guestFailed("failed to persist secret: the host has no state directory")
		}
		if err := secretstore.Set(s.inst.host.cfg.StateDir, s.inst.ID(), map[string]string{req.Key: *ans.Value}); err != nil {
			return nil, guestFailed("failed to persist secret: %v", err)
		}
	}
	return elicit.Result(req.Kind, ans)
}

// hasSecret: astrid_has_secret({"key"}) -> {"exists": bool}, whether the capsule's secret store
// holds key. A request that is not JSON traps with upstream's text.
func hasSecret(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	var req struct {
		Key *string `json:"key"`
	}
	if err := json.Unmarshal(args[0], &req); err != nil || req.Key == nil {
		msg := "missing field `key`"
		if err != nil {
			msg = err.Error()
		}
		return nil, guestFailed("invalid has_secret request JSON: %s", msg)
	}
	if s.inst.host.cfg.StateDir == "" {
		return []byte(`{"exists":false}`), nil
	}
	exists, err := secretstore.Exists(s.inst.host.cfg.StateDir, s.inst.ID(), *req.Key)
	if err != nil {
		return nil, guestFailed("failed to check for secret: %v", err)
	}
	return json.Marshal(struct {
		Exists bool `json:"exists"`
	}{exists})
}
