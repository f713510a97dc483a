package tests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
)

// busWatch reads what a test-side bus subscription receives.
type busWatch struct {
	t   *testing.T
	sub *bus.Subscription
	got []bus.Message
}

// watchBus subscribes the test to pattern on h's bus.
func watchBus(t *testing.T, h *host.Host, pattern string) *busWatch {
	t.Helper()
	w := &busWatch{t: t, sub: h.Bus().Subscribe(pattern)}
	t.Cleanup(w.sub.Close)
	return w
}

// next returns the guest bytes (upstream's to_guest_bytes) of the next message on topic,
// failing the test after 30 s; messages on other topics are kept in w.got.
func (w *busWatch) next(topic string) []byte {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		for i, m := range w.got {
			if m.Topic == topic {
				w.got = append(w.got[:i:i], w.got[i+1:]...)
				return bus.GuestBytes(m.Payload)
			}
		}
		env, err := w.sub.Recv(ctx, 10<<20)
		if err != nil {
			w.t.Fatalf("waiting for a message on %s: %v (received meanwhile: %d others)", topic, err, len(w.got))
		}
		w.got = append(w.got, env.Messages...)
	}
}

// publishJSON publishes v as the operator (principal "default").
func publishJSON(t *testing.T, h *host.Host, topic string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(topic, b); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// TestSessionCapsule drives examples/session (the port of capsule-session) through its
// interceptors: appends, reads with append_before_read, clears into a chained session, refuses
// bad requests without changing anything, and finds its history again in a second host on the
// same state directory (the KV store is durable).
func TestSessionCapsule(t *testing.T) {
	checkLeaks(t)
	state := t.TempDir()
	withState := func(c *host.Config) { c.StateDir = state }
	h := newHost(t, withState)
	loadCapsule(t, h, "session")
	w := watchBus(t, h, "session.v1.response.*")

	type msg struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
	}
	type history struct {
		CorrelationID string `json:"correlation_id"`
		Messages      []msg  `json:"messages"`
	}
	get := func(w *busWatch, h *host.Host, cid string, req map[string]any) history {
		t.Helper()
		req["correlation_id"] = cid
		publishJSON(t, h, "session.v1.request.get_messages", req)
		var hist history
		if err := json.Unmarshal(w.next("session.v1.response.get_messages."+cid), &hist); err != nil {
			t.Fatal(err)
		}
		if hist.CorrelationID != cid {
			t.Fatalf("reply for %s carries correlation_id %q", cid, hist.CorrelationID)
		}
		return hist
	}

	publishJSON(t, h, "session.v1.append", map[string]any{"messages": []msg{{"user", "hello"}}})
	// Refused: an unknown role fails the invocation and appends nothing.
	publishJSON(t, h, "session.v1.append", map[string]any{"messages": []msg{{"robot", "beep"}}})
	// Refused: a correlation id with a dot would add a topic segment; no reply, no append.
	publishJSON(t, h, "session.v1.request.get_messages", map[string]any{"correlation_id": "a.b", "append_before_read": []msg{{"user", "lost"}}})
	hist := get(w, h, "c1", map[string]any{"append_before_read": []msg{{"assistant", []any{map[string]any{"type": "text", "text": "hi"}}}}})
	if len(hist.Messages) != 2 || hist.Messages[0].Role != "user" || hist.Messages[0].Content != "hello" || hist.Messages[1].Role != "assistant" {
		t.Fatalf("history c1 = %+v", hist.Messages)
	}
	if b, _ := json.Marshal(hist.Messages[1].Content); string(b) != `[{"text":"hi","type":"text"}]` {
		t.Fatalf("content changed on the way: %s", b)
	}

	// Clear starts a chained session; the old one is kept.
	publishJSON(t, h, "session.v1.request.clear", map[string]any{"correlation_id": "c2"})
	var cleared struct {
		CorrelationID string `json:"correlation_id"`
		New           string `json:"new_session_id"`
		Old           string `json:"old_session_id"`
	}
	if err := json.Unmarshal(w.next("session.v1.response.clear.c2"), &cleared); err != nil {
		t.Fatal(err)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if cleared.Old != "default" || !uuid.MatchString(cleared.New) || cleared.CorrelationID != "c2" {
		t.Fatalf("clear reply = %+v", cleared)
	}
	if hist := get(w, h, "c3", map[string]any{"session_id": cleared.New}); len(hist.Messages) != 0 {
		t.Fatalf("new session has %+v", hist.Messages)
	}
	for _, m := range w.got {
		if strings.HasSuffix(m.Topic, ".a.b") || strings.HasSuffix(m.Topic, ".a") {
			t.Fatalf("a refused request got a reply on %s", m.Topic)
		}
	}
	h.Shutdown(context.Background())

	// A second host on the same state directory sees the history.
	h2 := newHost(t, withState)
	loadCapsule(t, h2, "session")
	w2 := watchBus(t, h2, "session.v1.response.*")
	if hist := get(w2, h2, "c4", map[string]any{}); len(hist.Messages) != 2 || hist.Messages[0].Content != "hello" {
		t.Fatalf("after a host restart, history = %+v", hist.Messages)
	}
}

// TestMemoryCapsule drives examples/memory (the port of capsule-memory): personal memory from
// home://memory.md and project memory from cwd://.astrid/memory.md are injected on the
// request's response topic, home memory is the caller principal's, a long file is cut on a
// UTF-8 boundary, and nothing is published when there is no memory.
func TestMemoryCapsule(t *testing.T) {
	checkLeaks(t)
	state, ws := t.TempDir(), t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir, c.Workspace = state, ws })
	loadCapsule(t, h, "memory")
	w := watchBus(t, h, "prompt_builder.v1.hook_response.*")
	ask := func(id string) string {
		t.Helper()
		publishJSON(t, h, "prompt_builder.v1.hook.before_build", map[string]any{"response_topic": "prompt_builder.v1.hook_response." + id})
		var r struct {
			Append string `json:"appendSystemContext"`
		}
		if err := json.Unmarshal(w.next("prompt_builder.v1.hook_response."+id), &r); err != nil {
			t.Fatal(err)
		}
		return r.Append
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	personal := filepath.Join(state, "home", host.DefaultPrincipal, "memory.md")
	project := filepath.Join(ws, ".astrid", "memory.md")

	// No response_topic: the invocation fails, nothing is published.
	publishJSON(t, h, "prompt_builder.v1.hook.before_build", map[string]any{"other": 1})
	write(project, "Build with make.\n")
	if got, want := ask("r2"), "# Memory (project)\n\nBuild with make.\n"; got != want {
		t.Fatalf("project only: %q, want %q", got, want)
	}
	write(personal, "Prefers short answers.")
	if got, want := ask("r3"), "# Memory (personal)\n\nPrefers short answers.\n\n# Memory (project)\n\nBuild with make.\n"; got != want {
		t.Fatalf("both: %q, want %q", got, want)
	}
	// 32 767 ASCII bytes then a 3-byte rune straddling the cap: the cut falls before the rune.
	write(project, strings.Repeat("a", 32767)+"€tail")
	write(personal, "   \n")
	if got, want := ask("r4"), "# Memory (project)\n\n"+strings.Repeat("a", 32767)+"\n\n[Memory truncated]"; got != want {
		t.Fatalf("truncated: %d bytes ending %q, want %d bytes", len(got), got[max(0, len(got)-40):], len(want))
	}

	// Home memory is the caller principal's: bob has none, and without project memory his
	// request gets no reply; default's next request (published after it) gets the first one.
	write(personal, "Prefers short answers.")
	if err := os.Remove(project); err != nil {
		t.Fatal(err)
	}
	payload, err := bus.CustomPayload(map[string]any{"response_topic": "prompt_builder.v1.hook_response.r5"})
	if err != nil {
		t.Fatal(err)
	}
	h.Bus().Publish(bus.Message{Topic: "prompt_builder.v1.hook.before_build", Payload: payload, SourceID: bus.NilSourceID, Principal: "bob"})
	if got, want := ask("r6"), "# Memory (personal)\n\nPrefers short answers."; got != want {
		t.Fatalf("personal only: %q, want %q", got, want)
	}
	for _, m := range w.got {
		t.Fatalf("unexpected reply on %s: %s", m.Topic, m.Payload)
	}
}
