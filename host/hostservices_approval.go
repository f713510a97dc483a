package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/internal/approval"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/logtext"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// astrid_request_approval, as upstream 0.5's host/approval.rs: a capsule asks a human (or
// whatever answers on the bus) to approve a sensitive action. The request is sanitised, an
// allowance of the capsule that covers it answers at once ({"approved": true, "decision":
// "allowance"}); otherwise the host publishes ApprovalRequired on astrid.v1.approval and waits
// for the first message on astrid.v1.approval.response.<request_id>, at most
// Config.ApprovalTimeout (60 s); no answer, and the capsule unloading, deny. approve_session and
// approve_always answers leave an allowance (package approval). Anything on the bus may answer:
// a capsule whose ipc_publish covers the response topic, or the operator with `astrid-host
// approve`, through Host.Approve.

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_REQUEST_APPROVAL] = requestApproval
}

// Topics of approval requests and their answers.
const (
	// TopicApproval carries each approval request (upstream's ApprovalRequired payload).
	TopicApproval = "astrid.v1.approval"
	// TopicApprovalResponsePrefix + the request id is where the request's answer is awaited
	// (upstream's ApprovalResponse payload).
	TopicApprovalResponsePrefix = "astrid.v1.approval.response."
)

// DefaultApprovalTimeout is how long an approval request waits for its answer (Config.
// ApprovalTimeout): upstream's MAX_APPROVAL_TIMEOUT_MS, 60 s.
const DefaultApprovalTimeout = 60 * time.Second

// maxPendingApprovalsPerInstance bounds the requests of one instance waiting at once. A correct
// shim makes one host call at a time; a shim that sends more is refused past it.
const maxPendingApprovalsPerInstance = 4

// PendingApproval is an approval request waiting for its answer, as the operator sees it.
type PendingApproval struct {
	RequestID string    `json:"request_id"`
	Capsule   string    `json:"capsule"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	RiskLevel string    `json:"risk_level"`
	Since     time.Time `json:"since"`
}

// approvals is the host's side of approval requests: the allowances and the requests waiting.
type approvals struct {
	allowances *approval.Allowances
	timeout    time.Duration

	mu      sync.Mutex
	pending map[string]PendingApproval
	waits   map[*Instance]*instanceWaits
}

// instanceWaits are the requests of one instance waiting for their answers.
type instanceWaits struct {
	cancels map[string]context.CancelFunc
	wg      sync.WaitGroup
}

func newApprovals(h *Host, timeout time.Duration) *approvals {
	return &approvals{
		allowances: approval.NewAllowances(h.kv.Store),
		timeout:    timeout,
		pending:    map[string]PendingApproval{},
		waits:      map[*Instance]*instanceWaits{},
	}
}

// begin records a waiting request of inst and returns the context its wait ends with (ctx, or
// the instance stopping: stopInstance); end (returned) forgets the request. A stopping instance
// makes no more requests.
func (a *approvals) begin(ctx context.Context, inst *Instance, p PendingApproval) (wctx context.Context, end func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	inst.mu.Lock()
	stopping := inst.stopping
	inst.mu.Unlock()
	if stopping {
		return nil, nil, errors.New("approval request refused: the capsule is unloading")
	}
	w := a.waits[inst]
	if w == nil {
		w = &instanceWaits{cancels: map[string]context.CancelFunc{}}
		a.waits[inst] = w
	}
	if len(w.cancels) >= maxPendingApprovalsPerInstance {
		return nil, nil, fmt.Errorf("approval request refused: %d requests of this capsule are already waiting for an answer, the most one capsule may have", maxPendingApprovalsPerInstance)
	}
	wctx, cancel := context.WithCancel(ctx)
	w.cancels[p.RequestID] = cancel
	w.wg.Add(1)
	a.pending[p.RequestID] = p
	return wctx, func() {
		cancel()
		a.mu.Lock()
		delete(a.pending, p.RequestID)
		delete(w.cancels, p.RequestID)
		if len(w.cancels) == 0 && a.waits[inst] == w {
			delete(a.waits, inst)
		}
		a.mu.Unlock()
		w.wg.Done()
	}, nil
}

// stopInstance ends the waits of a stopping instance's requests (each is denied) and returns
// once they have ended: an unload does not wait for an answer, however the shim behaves.
func (a *approvals) stopInstance(inst *Instance) {
	a.mu.Lock()
	w := a.waits[inst]
	if w != nil {
		for _, cancel := range w.cancels {
			cancel()
		}
	}
	a.mu.Unlock()
	if w != nil {
		w.wg.Wait()
	}
}

// PendingApprovals lists the approval requests waiting for an answer, oldest first.
func (h *Host) PendingApprovals() []PendingApproval {
	h.approvals.mu.Lock()
	out := make([]PendingApproval, 0, len(h.approvals.pending))
	for _, p := range h.approvals.pending {
		out = append(out, p)
	}
	h.approvals.mu.Unlock()
	slices.SortFunc(out, func(x, y PendingApproval) int { return x.Since.Compare(y.Since) })
	return out
}

// ApprovalDecisions are the decisions Approve takes: approve, deny, approve_session,
// approve_always.
func ApprovalDecisions() []string { return slices.Clone(approval.Decisions) }

// ErrNoSuchApproval is Approve's error for a request id no request is waiting under.
var ErrNoSuchApproval = errors.New("no approval request is waiting under this id (it was answered, timed out, or never existed)")

// Approve answers the waiting approval request requestID with decision (approve, deny,
// approve_session or approve_always), as the operator: the answer is published on the
// request's response topic, where whatever else listens sees it too.
func (h *Host) Approve(requestID, decision string) error {
	if !slices.Contains(approval.Decisions, decision) {
		return fmt.Errorf("decision %q: want one of %s", logtext.Escape(decision), strings.Join(approval.Decisions, ", "))
	}
	h.approvals.mu.Lock()
	_, ok := h.approvals.pending[requestID]
	h.approvals.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", logtext.Escape(requestID), ErrNoSuchApproval)
	}
	payload, err := serdejson.Marshal(approvalResponsePayload{Type: "approval_response", RequestID: requestID, Decision: decision})
	if err != nil {
		return err
	}
	h.bus.Publish(bus.Message{Topic: TopicApprovalResponsePrefix + requestID, Payload: payload, SourceID: hostSourceID, Principal: DefaultPrincipal})
	h.log.Info("approval answered by the operator", "request_id", requestID, "decision", decision)
	return nil
}

// approvalRequiredPayload is upstream's IpcPayload::ApprovalRequired.
type approvalRequiredPayload struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	Reason    string `json:"reason"`
	RiskLevel string `json:"risk_level"`
}

// approvalResponsePayload is upstream's IpcPayload::ApprovalResponse.
type approvalResponsePayload struct {
	Type      string  `json:"type"`
	RequestID string  `json:"request_id"`
	Decision  string  `json:"decision"`
	Reason    *string `json:"reason,omitempty"`
}

// approvalResult is what the guest gets: {"approved": bool, "decision": string}.
type approvalResult struct {
	Approved bool   `json:"approved"`
	Decision string `json:"decision"`
}

// requestApproval: astrid_request_approval(request) → {"approved", "decision"}.
func requestApproval(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	inst, h := s.inst, s.inst.host
	fields, err := guestJSONFields(args[0], "action", "resource", "risk_level")
	if err != nil {
		return nil, guestFailed("invalid approval request JSON: %v", err)
	}
	req, changed, err := approval.Sanitize(fields["action"], fields["resource"], fields["risk_level"])
	if err != nil {
		return nil, guestFailed("%v", err)
	}
	for _, f := range changed {
		inst.log.Warn(f + " sanitized: control characters stripped or length truncated")
	}
	al, found, err := h.approvals.allowances.Find(inst.ID(), req.Resource)
	switch {
	case err != nil:
		// Without its allowances the request is asked, never granted.
		inst.log.Warn("cannot read the approval allowances; asking instead", "error", err)
	case found:
		inst.log.Debug("approval auto-granted via existing allowance", "action", logtext.Escape(req.Action),
			"resource", logtext.Escape(req.Resource), "allowance", logtext.Escape(al.Pattern()))
		return serdejson.Marshal(approvalResult{Approved: true, Decision: approval.DecisionAllowance})
	}
	return h.askApproval(ctx, inst, req)
}

// askApproval publishes the request and waits for its answer (see requestApproval).
func (h *Host) askApproval(ctx context.Context, inst *Instance, req approval.Request) ([]byte, error) {
	id := uuid.NewString()
	// Subscribe before publishing, so no answer can come first.
	sub := h.bus.Subscribe(TopicApprovalResponsePrefix + id)
	defer sub.Close()
	ctx, end, err := h.approvals.begin(ctx, inst, PendingApproval{RequestID: id, Capsule: inst.ID(), Action: req.Action,
		Resource: req.Resource, RiskLevel: req.RiskLevel, Since: time.Now().UTC()})
	if err != nil {
		return nil, guestFailed("%v", err)
	}
	defer end()
	payload, err := serdejson.Marshal(approvalRequiredPayload{Type: "approval_required", RequestID: id, Action: req.Action,
		Resource: req.Resource, Reason: fmt.Sprintf("Capsule '%s' requests approval", inst.ID()), RiskLevel: req.RiskLevel})
	if err != nil {
		return nil, err
	}
	h.bus.Publish(bus.Message{Topic: TopicApproval, Payload: payload, SourceID: hostSourceID})
	inst.log.Info("approval requested; answer with: astrid-host approve REQUEST_ID approve|deny|approve_session|approve_always",
		"request_id", id, "action", logtext.Escape(req.Action), "resource", logtext.Escape(req.Resource),
		"risk_level", logtext.Escape(req.RiskLevel), "waits", h.approvals.timeout)

	wctx, cancel := context.WithTimeout(ctx, h.approvals.timeout)
	defer cancel()
	env, _ := sub.Recv(wctx, shared.MaxPayloadBytes)
	if len(env.Messages) == 0 {
		why := "timed out"
		if ctx.Err() != nil {
			why = "cancelled: the call ended or the capsule is unloading"
		}
		inst.log.Warn("approval request "+why+"; denied", "request_id", id, "action", logtext.Escape(req.Action))
		return serdejson.Marshal(approvalResult{Approved: false, Decision: approval.DecisionDeny})
	}
	decision, reason, ok := approvalResponse(env.Messages[0].Payload)
	if !ok {
		return nil, guestFailed("unexpected IPC payload type in approval response")
	}
	approved := approval.Approves(decision)
	if approved {
		if _, err := h.approvals.allowances.Add(inst.ID(), req.Action, decision); err != nil {
			inst.log.Warn("failed to add approval allowance", "error", err)
		}
	}
	if reason == "" {
		reason = "none"
	}
	inst.log.Info("approval response received", "request_id", id, "action", logtext.Escape(req.Action),
		"decision", logtext.Escape(decision), "reason", logtext.Escape(reason))
	return serdejson.Marshal(approvalResult{Approved: approved, Decision: decision})
}

// approvalResponse reads an ApprovalResponse payload's decision and reason; false for any other
// payload.
func approvalResponse(payload json.RawMessage) (decision, reason string, ok bool) {
	var p approvalResponsePayload
	if err := json.Unmarshal(payload, &p); err != nil || p.Type != "approval_response" {
		return "", "", false
	}
	if p.Reason != nil {
		reason = *p.Reason
	}
	return p.Decision, reason, true
}

// guestJSONFields decodes a guest's JSON object whose listed fields are all strings, as serde
// decodes a struct of String fields: the request must be UTF-8 and an object, each field present
// (by its exact name) and a string; other fields are ignored. Errors name what is wrong.
func guestJSONFields(raw []byte, names ...string) (map[string]string, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("the request is not valid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("want a JSON object with the string fields %s", strings.Join(names, ", "))
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		v, ok := obj[name]
		if !ok {
			return nil, fmt.Errorf("missing field `%s`", name)
		}
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return nil, fmt.Errorf("%s: want a string, got %s", name, kindOf(v))
		}
		out[name] = s
	}
	return out, nil
}
