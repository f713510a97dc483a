package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
)

// interceptorDef is one [[interceptor]] of a hook capsule variant.
type interceptorDef struct {
	event, action string
	priority      int // 0: none given (the default, 100)
}

// hookCapsule writes a capsule directory named name that runs the built hook capsule's module
// with the given [[interceptor]]s and extra manifest text (e.g. a [limits] table).
func hookCapsule(t testing.TB, name string, ics []interceptorDef, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Link(filepath.Join(capsules["hook"], "hook.wasm"), filepath.Join(dir, "hook.wasm")); err != nil {
		data, rerr := os.ReadFile(filepath.Join(capsules["hook"], "hook.wasm"))
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(filepath.Join(dir, "hook.wasm"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = %q\nversion = \"0.1.0\"\nastrid-version = \">=0.5.0\"\n\n", name)
	b.WriteString("[[component]]\nid = \"hook\"\nfile = \"hook.wasm\"\n\n[capabilities]\nipc_publish = [\"test.v1.*\"]\n")
	for _, ic := range ics {
		fmt.Fprintf(&b, "\n[[interceptor]]\nevent = %q\naction = %q\n", ic.event, ic.action)
		if ic.priority != 0 {
			fmt.Fprintf(&b, "priority = %d\n", ic.priority)
		}
	}
	b.WriteString("\n" + extra + "\n")
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// seenRecord is what a hook capsule's rec directive publishes on test.v1.seen: the input of its
// astrid_hook_trigger and its caller context, with the principal the publish carried.
type seenRecord struct {
	Action    string
	Payload   []byte
	Caller    json.RawMessage
	Principal string
	T         int64 // stamp: when astrid_hook_trigger was entered (ns since the epoch)
}

// recorder reads the records of hook capsules from the bus.
type recorder struct {
	sub     *bus.Subscription
	pending []bus.Message
}

func newRecorder(t testing.TB, h *host.Host) *recorder {
	r := &recorder{sub: h.Bus().Subscribe("test.v1.seen")}
	t.Cleanup(r.sub.Close)
	return r
}

// next returns the next record, failing the test if none comes within timeout.
func (r *recorder) next(t testing.TB, timeout time.Duration) seenRecord {
	t.Helper()
	rec, ok := r.tryNext(t, timeout)
	if !ok {
		t.Fatalf("no record on test.v1.seen within %s", timeout)
	}
	return rec
}

// tryNext is next without failing: false when nothing came within timeout.
func (r *recorder) tryNext(t testing.TB, timeout time.Duration) (seenRecord, bool) {
	t.Helper()
	if len(r.pending) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		env, err := r.sub.Recv(ctx, 1<<20)
		cancel()
		if env.Lagged != 0 {
			t.Fatalf("the recorder lagged by %d records", env.Lagged)
		}
		if err != nil {
			return seenRecord{}, false
		}
		r.pending = env.Messages
	}
	m := r.pending[0]
	r.pending = r.pending[1:]
	var raw struct {
		Name      string          `json:"name"`
		Arguments []int           `json:"arguments"`
		Caller    json.RawMessage `json:"caller"`
		T         int64           `json:"t"`
	}
	if err := json.Unmarshal(bus.GuestBytes(m.Payload), &raw); err != nil {
		t.Fatalf("record %s: %v", m.Payload, err)
	}
	rec := seenRecord{Action: raw.Name, Caller: raw.Caller, Principal: m.Principal, T: raw.T}
	for _, c := range raw.Arguments {
		rec.Payload = append(rec.Payload, byte(c))
	}
	return rec, true
}

// label is the #LABEL of an action ("" if none).
func (s seenRecord) label() string {
	for _, f := range strings.Fields(s.Action) {
		if strings.HasPrefix(f, "#") {
			return f[1:]
		}
	}
	return ""
}

// publish publishes a custom payload (any JSON) on h's bus for principal, as a capsule would.
func publish(t testing.TB, h *host.Host, topic, payload, principal string) {
	t.Helper()
	p, err := bus.PayloadFromGuest([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	h.Bus().Publish(bus.Message{Topic: topic, Payload: p, SourceID: bus.NilSourceID, Principal: principal})
}

// nextMessages waits for the next messages of sub, failing the test if none come within
// recordTimeout.
func nextMessages(t testing.TB, sub *bus.Subscription) []bus.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	env, err := sub.Recv(ctx, 1<<20)
	if err != nil {
		t.Fatalf("no message for %s within %s: %v", sub.Pattern(), recordTimeout, err)
	}
	return env.Messages
}
