package tests

import (
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
)

// TestBadPayloadIsGuestError: payloads that are not JSON as upstream reads them (serde_json) —
// a number beyond float64, arrays nested 128 deep, a lone UTF-16 surrogate escape, invalid
// UTF-8 — get the publishing guest upstream's error from its own shim. The host never sees them,
// so it never judges the (correct) shim compromised: the capsule stays Ready in the same
// process, no crash is published and no restart attempt is spent. The same payloads just inside
// the rules reach the bus.
func TestBadPayloadIsGuestError(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	crashes := h.Bus().Subscribe(host.TopicCapsuleCrashed)
	defer crashes.Close()
	restarts := h.Bus().Subscribe(host.TopicCapsuleRestarted)
	defer restarts.Close()
	delivered := h.Bus().Subscribe("test.v1.*")
	defer delivered.Close()
	// A compromise verdict would restart the capsule: the test would see the attempt spent.
	dir := capsuleVariant(t, "ipc", "\n[restart]\npolicy = \"on-failure\"\nmax_attempts = 3\nbackoff = \"10ms\"\nmax_backoff = \"10ms\"\n")
	inst, _ := loadCapsule(t, h, dir)
	pid := inst.Pid()

	const notJSON = "astrid_ipc_publish: IPC payload is not valid JSON"
	tests := []struct {
		name    string
		payload []byte
		want    string // "" if the payload is valid and must reach the bus
	}{
		{"number beyond float64", []byte("1e400"), notJSON},
		{"negative number beyond float64", []byte(`{"a":[-1e400]}`), notJSON},
		{"arrays nested 128 deep", []byte(strings.Repeat("[", 128) + strings.Repeat("]", 128)), notJSON},
		{"objects nested 128 deep", []byte(strings.Repeat(`{"a":`, 128) + "1" + strings.Repeat("}", 128)), notJSON},
		{"lone high surrogate", []byte(`"\ud800"`), notJSON},
		{"lone low surrogate", []byte(`{"k":"\udc00"}`), notJSON},
		{"invalid UTF-8 in a string", []byte("\"\xff\""), notJSON},
		{"invalid UTF-8 in a key", []byte("{\"\xc3\x28\":1}"), notJSON},
		{"largest float64", []byte("1.7976931348623157e308"), ""},
		{"arrays nested 127 deep", []byte(strings.Repeat("[", 127) + strings.Repeat("]", 127)), ""},
		{"surrogate pair", []byte(`"\ud83d\ude00"`), ""},
	}
	var valid int
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{"topic": "test.v1.input", "raw_b64": tc.payload}
			if tc.want == "" {
				call(t, inst, "publish", in)
				valid++
				return
			}
			if got := guestFailure(t, inst, "publish", in); !strings.Contains(got, tc.want) {
				t.Fatalf("publish %q: %q, want %q", tc.payload, got, tc.want)
			}
			if st, reason := inst.State(); st != host.StateReady {
				t.Fatalf("after publishing %q: %s (%s)", tc.payload, st, reason)
			}
		})
	}
	// A last publish goes through the same ordered pipeline to the host: once it is on the bus,
	// the host has answered everything the shim sent before it.
	call(t, inst, "publish", map[string]any{"topic": "test.v1.last", "payload": 1})
	env := delivered.Poll(1 << 20)
	if len(env.Messages) != valid+1 || env.Messages[len(env.Messages)-1].Topic != "test.v1.last" {
		t.Fatalf("the bus got %d messages, want the %d valid ones and the last: %+v", len(env.Messages), valid, env.Messages)
	}
	if st, reason := inst.State(); st != host.StateReady || inst.Pid() != pid || inst.Restarts() != 0 {
		t.Fatalf("the capsule is %s (%s), pid %d (was %d), %d restarts", st, reason, inst.Pid(), pid, inst.Restarts())
	}
	if env := crashes.Poll(1 << 20); len(env.Messages) != 0 {
		t.Fatalf("crash events: %s", env.Messages[0].Payload)
	}
	if env := restarts.Poll(1 << 20); len(env.Messages) != 0 {
		t.Fatalf("restart events: %s", env.Messages[0].Payload)
	}
}
