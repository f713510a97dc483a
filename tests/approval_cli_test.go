package tests

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// TestApprovalCLI: the operator answers a capsule's approval request with `astrid-host approve`
// against a running `astrid-host run`, through its control socket; the request id comes from
// the bus (--tail astrid.v1.approval), as a frontend would read it.
func TestApprovalCLI(t *testing.T) {
	state := t.TempDir()
	request := `{"action":"git push","resource":"git push origin main","risk_level":"high"}`
	run := startRun(t, "--state", state, "--tail", host.TopicApproval, "--tail", "test.v1.approval.result",
		"--publish", "test.v1.approval.request="+request, capsules["authz"])
	var msg struct {
		Payload struct {
			Type      string `json:"type"`
			RequestID string `json:"request_id"`
			Reason    string `json:"reason"`
		} `json:"payload"`
	}
	line := run.awaitStdout(t, `"type":"approval_required"`)
	if err := json.Unmarshal([]byte(line), &msg); err != nil || msg.Payload.RequestID == "" || msg.Payload.Reason != "Capsule 'authz' requests approval" {
		t.Fatalf("approval request line %s: %v", line, err)
	}
	id := msg.Payload.RequestID
	// The log line goes to stderr, the tailed message to stdout: either may be read first.
	waitFor(t, eventTimeout, "run's log naming the request id "+id, func() bool {
		return strings.Contains(run.logText(), "request_id="+id)
	})

	if res := runCLI(t, state, "approve", "--state", state, id, "maybe"); res.code != 2 || !strings.Contains(res.stderr, `decision "maybe": want one of approve, deny, approve_session, approve_always`) {
		t.Fatalf("a bad decision: exit %d\n%s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "approve", "--state", state, id, "approve_session"); res.code != 0 || res.stdout != id+": approve_session\n" {
		t.Fatalf("approve: exit %d\nstdout %s\nstderr %s", res.code, res.stdout, res.stderr)
	}
	if line := run.awaitStdout(t, `"approved":true`); !strings.Contains(line, `"decision":"approve_session"`) {
		t.Fatalf("result line %s", line)
	}
	if res := runCLI(t, state, "approve", "--state", state, id, "approve"); res.code != 1 || !strings.Contains(res.stderr, "no approval request is waiting under this id") {
		t.Fatalf("answering twice: exit %d\n%s", res.code, res.stderr)
	}

	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t, runShutdownBound); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, state, "approve", "--state", state, id, "approve"); res.code != 1 || !strings.Contains(res.stderr, "no astrid-host run is running with state directory "+state) {
		t.Fatalf("approve with no host: exit %d\n%s", res.code, res.stderr)
	}
}

// TestSDKApprovalIdentity: the sdk/go wrappers (the authz test capsule) against a real host.
func TestSDKApprovalIdentity(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.ApprovalTimeout = 10 * time.Minute })
	inst, _ := loadCapsule(t, h, "authz")

	out, err := inst.Call(context.Background(), "identity", nil, 0)
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	var got struct {
		UserID string `json:"user_id"`
		Link   struct {
			Platform, PlatformUserID, AstridUserID, Method string
			LinkedAt                                       time.Time
		} `json:"link"`
		Resolved struct{ UserID, DisplayName string } `json:"resolved"`
		Found    bool                                 `json:"found"`
		Links    []struct{ Platform string }          `json:"links"`
		Removed  bool                                 `json:"removed"`
		After    bool                                 `json:"found_after_unlink"`
		Refusal  string                               `json:"refusal"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("identity output %s: %v", out, err)
	}
	if got.Link.Platform != "discord" || got.Link.PlatformUserID != "123" || got.Link.AstridUserID != got.UserID || got.Link.Method != "chat_command" ||
		time.Since(got.Link.LinkedAt) > time.Hour || !got.Found || got.Resolved.UserID != got.UserID || got.Resolved.DisplayName != "Alice" ||
		len(got.Links) != 1 || !got.Removed || got.After || got.Refusal != "storage error: invalid input: platform must not be empty" {
		t.Fatalf("identity output %s", out)
	}

	sub := h.Bus().Subscribe(host.TopicApproval)
	defer sub.Close()
	done := make(chan callResult, 1)
	go func() {
		out, err := inst.Call(context.Background(), "ask", []byte(`{"action":"rm","resource":"rm -rf build","risk_level":"medium"}`), 0)
		done <- callResult{out, err}
	}()
	req, _ := nextApproval(t, sub)
	answer(h, req.RequestID, "deny")
	if r := wait(t, done); r.err != nil || string(r.out) != `{"approved":false,"decision":"deny"}` {
		t.Fatalf("ask: %s, %v", r.out, r.err)
	}
}
