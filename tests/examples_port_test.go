package tests

import (
	"context"
	"encoding/json"
	"fmt"
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
	return bus.GuestBytes(w.nextMsg(topic).Payload)
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
// UTF-8 boundary, and nothing is published when there is no memory. Then our addition,
// memory.v1.remember: lines appended to either file are injected by the next before_build, the
// per-principal KV index counts them and refuses a duplicate while the line is still in the
// file, bad requests change nothing, and a second host on the same state directory sees the
// index.
func TestMemoryCapsule(t *testing.T) {
	checkLeaks(t)
	state, ws := t.TempDir(), t.TempDir()
	withDirs := func(c *host.Config) { c.StateDir, c.Workspace = state, ws }
	h := newHost(t, withDirs)
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

	testMemoryRemember(t, h, state, ws, withDirs)
}

// rememberReply is memory.v1.remember's reply.
type rememberReply struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Scope  string `json:"scope"`
	Line   string `json:"line"`
	Bytes  int    `json:"bytes"`
	Count  uint64 `json:"count"`
	LastMS uint64 `json:"last_ms"`
}

// testMemoryRemember is TestMemoryCapsule's part for memory.v1.remember, on h (whose personal
// memory is "Prefers short answers." and which has no project memory file).
func testMemoryRemember(t *testing.T, h *host.Host, state, ws string, withDirs func(*host.Config)) {
	personal := filepath.Join(state, "home", host.DefaultPrincipal, "memory.md")
	project := filepath.Join(ws, ".astrid", "memory.md")
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The project folder is gone too: remember creates it.
	if err := os.Remove(filepath.Dir(project)); err != nil {
		t.Fatal(err)
	}
	type env struct {
		h  *host.Host
		w  *busWatch
		wp *busWatch
	}
	e := &env{h: h, w: watchBus(t, h, "memory.v1.response.*"), wp: watchBus(t, h, "prompt_builder.v1.hook_response.*")}
	n := 0
	// remember publishes req as principal and returns the reply on a fresh response topic.
	remember := func(principal string, req map[string]any) rememberReply {
		t.Helper()
		n++
		topic := fmt.Sprintf("memory.v1.response.m%d", n)
		req["response_topic"] = topic
		payload, err := bus.CustomPayload(req)
		if err != nil {
			t.Fatal(err)
		}
		e.h.Bus().Publish(bus.Message{Topic: "memory.v1.remember", Payload: payload, SourceID: bus.NilSourceID, Principal: principal})
		var r rememberReply
		if err := json.Unmarshal(e.w.next(topic), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ask := func() string {
		t.Helper()
		n++
		topic := fmt.Sprintf("prompt_builder.v1.hook_response.p%d", n)
		publishJSON(t, e.h, "prompt_builder.v1.hook.before_build", map[string]any{"response_topic": topic})
		var r struct {
			Append string `json:"appendSystemContext"`
		}
		if err := json.Unmarshal(e.wp.next(topic), &r); err != nil {
			t.Fatal(err)
		}
		return r.Append
	}
	line := regexp.MustCompile(`^- \d{4}-\d{2}-\d{2}: `)
	start := uint64(time.Now().UnixMilli())

	// Refused requests change nothing and say why. One with a response topic outside
	// memory.v1.response.* and one whose payload is not an object get no reply (the invocation
	// fails, logged): they come first, and the next reply proves they were run.
	publishJSON(t, h, "memory.v1.remember", map[string]any{"text": "never", "response_topic": "prompt_builder.v1.hook_response.x"})
	publishJSON(t, h, "memory.v1.remember", []int{1})
	for _, c := range []struct {
		name, want string
		req        map[string]any
	}{
		{"unknown scope", `unknown scope "team"`, map[string]any{"text": "x", "scope": "team"}},
		{"blank text", "text is empty", map[string]any{"text": " \n\t "}},
		{"text too long", "over the limit of 2048 bytes", map[string]any{"text": strings.Repeat("x", 2049)}},
		{"control character", "control characters", map[string]any{"text": "a\x1b[2Jb"}},
	} {
		// Not t.Run: remember's bus watch fails the parent test, from its goroutine.
		if r := remember(host.DefaultPrincipal, c.req); r.Status != "error" || !strings.Contains(r.Error, c.want) {
			t.Fatalf("%s: reply = %+v, want an error containing %q", c.name, r, c.want)
		}
	}
	if got := read(personal); got != "Prefers short answers." {
		t.Fatalf("refused requests changed personal memory: %q", got)
	}
	if _, err := os.Stat(filepath.Dir(project)); !os.IsNotExist(err) {
		t.Fatalf("refused requests created the project folder: %v", err)
	}

	// Project memory: the folder and file are created, the whitespace collapsed.
	r1 := remember(host.DefaultPrincipal, map[string]any{"text": "Deploys  on\nFridays are banned.", "scope": "project"})
	if r1.Status != "remembered" || r1.Scope != "project" || r1.Count != 1 || r1.LastMS < start || !line.MatchString(r1.Line) || !strings.HasSuffix(r1.Line, ": Deploys on Fridays are banned.") {
		t.Fatalf("project remember = %+v", r1)
	}
	if got := read(project); got != r1.Line+"\n" || r1.Bytes != len(got) {
		t.Fatalf("project memory = %q (reply says %d bytes), want %q", got, r1.Bytes, r1.Line+"\n")
	}
	// Personal memory (the default scope): appended on a line of its own.
	r2 := remember(host.DefaultPrincipal, map[string]any{"text": "Likes Go."})
	if r2.Status != "remembered" || r2.Scope != "personal" || r2.Count != 2 || r2.LastMS < r1.LastMS {
		t.Fatalf("personal remember = %+v", r2)
	}
	wantPersonal := "Prefers short answers.\n" + r2.Line + "\n"
	if got := read(personal); got != wantPersonal {
		t.Fatalf("personal memory = %q, want %q", got, wantPersonal)
	}
	// The next before_build injects both.
	if got, want := ask(), "# Memory (personal)\n\n"+wantPersonal+"\n\n# Memory (project)\n\n"+r1.Line+"\n"; got != want {
		t.Fatalf("before_build after remember: %q, want %q", got, want)
	}
	// The same text again (after whitespace collapsing) is a duplicate: nothing written, the
	// index unchanged. The same text in the other scope is not.
	if r := remember(host.DefaultPrincipal, map[string]any{"text": " Likes   Go. ", "scope": "personal"}); r.Status != "duplicate" || r.Count != 2 || r.LastMS != r2.LastMS {
		t.Fatalf("duplicate = %+v", r)
	}
	if got := read(personal); got != wantPersonal {
		t.Fatalf("a duplicate changed personal memory: %q", got)
	}
	// The index is per principal: bob's first line, in his own home.
	rb := remember("bob", map[string]any{"text": "Likes Go."})
	if rb.Status != "remembered" || rb.Count != 1 {
		t.Fatalf("bob's remember = %+v", rb)
	}
	if got := read(filepath.Join(state, "home", "bob", "memory.md")); got != rb.Line+"\n" {
		t.Fatalf("bob's memory = %q", got)
	}
	// A file that would grow past the 32 KiB that before_build injects is refused, unchanged.
	full := strings.Repeat("p", 32768-10)
	if err := os.WriteFile(project, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := remember(host.DefaultPrincipal, map[string]any{"text": "One more.", "scope": "project"}); r.Status != "error" || !strings.Contains(r.Error, "project memory is full") {
		t.Fatalf("full project memory: %+v", r)
	}
	if got := read(project); got != full {
		t.Fatalf("a refused remember changed the full file (%d bytes)", len(got))
	}
	// A file that is not UTF-8 is not replaced.
	if err := os.WriteFile(project, []byte("caf\xe9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := remember(host.DefaultPrincipal, map[string]any{"text": "One more.", "scope": "project"}); r.Status != "error" || !strings.Contains(r.Error, "is not UTF-8") {
		t.Fatalf("non-UTF-8 project memory: %+v", r)
	}
	if got := read(project); got != "caf\xe9\n" {
		t.Fatalf("a refused remember changed the non-UTF-8 file: %q", got)
	}
	if strings.Contains(read(personal), "never") {
		t.Fatal("a request with a forbidden response topic was carried out")
	}
	for _, m := range append(e.w.got, e.wp.got...) {
		t.Fatalf("unexpected reply on %s: %s", m.Topic, m.Payload)
	}
	h.Shutdown(context.Background())

	// A second host on the same state directory sees the index: the duplicate is still refused,
	// and once the line is gone from the file it is remembered again, counted as the third.
	h2 := newHost(t, withDirs)
	loadCapsule(t, h2, "memory")
	e.h, e.w, e.wp = h2, watchBus(t, h2, "memory.v1.response.*"), watchBus(t, h2, "prompt_builder.v1.hook_response.*")
	if r := remember(host.DefaultPrincipal, map[string]any{"text": "Likes Go."}); r.Status != "duplicate" || r.Count != 2 || r.LastMS != r2.LastMS {
		t.Fatalf("after a host restart, duplicate = %+v", r)
	}
	if err := os.WriteFile(personal, []byte("Prefers short answers.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r3 := remember(host.DefaultPrincipal, map[string]any{"text": "Likes Go."})
	if r3.Status != "remembered" || r3.Count != 3 {
		t.Fatalf("after the line was removed, remember = %+v", r3)
	}
	// The non-UTF-8 project file is skipped, as before.
	if got, want := ask(), "# Memory (personal)\n\nPrefers short answers.\n"+r3.Line+"\n"; got != want {
		t.Fatalf("before_build on the second host: %q, want %q", got, want)
	}
}
