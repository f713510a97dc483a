package tests

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
)

// The event every chain test publishes, and the pattern its interceptors match.
const (
	hookTopic = "test.v1.event.x"
	hookEvent = "test.v1.event.*"
)

// recordTimeout bounds the wait for one record: generous for a loaded machine, and only reached
// when a test fails.
const recordTimeout = 30 * time.Second

// chainCapsule is a capsule of a chain test: its name, its interceptor's priority (0: the
// default) and action.
type chainCapsule struct {
	name     string
	priority int
	action   string
}

// hexOf is the hex of a verdict byte followed by s.
func hexOf(verdict byte, s string) string { return hex.EncodeToString(append([]byte{verdict}, s...)) }

// TestInterceptorChain runs upstream's dispatcher vectors through real shims: capsules without a
// run export whose interceptors match the same topic form one chain in ascending priority
// (default 100); Continue passes its bytes on (empty bytes keep the payload), Final and Deny stop
// the chain; and the verdict bytes decode as upstream's InterceptResult::from_guest_bytes. The
// capsules are loaded in an order other than their priorities'. Each case publishes its messages
// in order on one route, so a message's chain has ended before the next one's starts: the record
// of a later message proves that an interceptor did not fire for an earlier one.
func TestInterceptorChain(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name     string
		capsules []chainCapsule
		payloads []string
		want     []string // "label payload" of each record, in order
	}{
		{
			name:     "priorities 200, 10, 50 fire as 10, 50, 200",
			capsules: []chainCapsule{{"p200", 200, "rec #p200"}, {"p10", 10, "rec #p10"}, {"p50", 50, "rec #p50"}},
			payloads: []string{`{"n":1}`},
			want:     []string{`p10 {"n":1}`, `p50 {"n":1}`, `p200 {"n":1}`},
		},
		{
			name:     "deny at 10 stops the one at 100",
			capsules: []chainCapsule{{"handler", 0, "rec #handler"}, {"guard", 10, "rec #guard out=@"}},
			payloads: []string{`{"out":"026e6f"}`, `{"out":""}`},
			want:     []string{`guard {"out":"026e6f"}`, `guard {"out":""}`, `handler {"out":""}`},
		},
		{
			name:     "final at 30 stops the one at 100",
			capsules: []chainCapsule{{"core", 100, "rec #core"}, {"cache", 30, "rec #cache out=@"}},
			payloads: []string{`{"out":"` + hexOf(1, "cached response") + `"}`, `{"out":""}`},
			want:     []string{`cache {"out":"` + hexOf(1, "cached response") + `"}`, `cache {"out":""}`, `core {"out":""}`},
		},
		{
			name:     "continue passes its bytes on; empty keeps the payload",
			capsules: []chainCapsule{{"second", 20, "rec #second"}, {"first", 10, "out=@"}},
			payloads: []string{`{"out":"` + hexOf(0, `{"x":2}`) + `"}`, `{"out":""}`, `{"out":"00"}`},
			want:     []string{`second {"x":2}`, `second {"out":""}`, `second {"out":"00"}`},
		},
		{
			// [] → Continue(empty), [0,1,2,3] → Continue([1,2,3]), [1,4,5] → Final([4,5]),
			// [2,'n','o'] → Deny("no"), [0xFF,1] → Continue([0xFF,1]); then a sentinel.
			name:     "verdict bytes decode as upstream",
			capsules: []chainCapsule{{"next", 20, "rec #next"}, {"verdict", 10, "out=@"}},
			payloads: []string{`{"out":""}`, `{"out":"00010203"}`, `{"out":"010405"}`, `{"out":"026e6f"}`, `{"out":"ff01"}`, `{"out":"","end":1}`},
			want:     []string{`next {"out":""}`, "next \x01\x02\x03", "next \xff\x01", `next {"out":"","end":1}`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			rec := newRecorder(t, h)
			for _, c := range tc.capsules {
				loadCapsule(t, h, hookCapsule(t, c.name, []interceptorDef{{hookEvent, c.action, c.priority}}, ""))
			}
			for _, p := range tc.payloads {
				publish(t, h, hookTopic, p, host.DefaultPrincipal)
			}
			var got []string
			for range tc.want {
				r := rec.next(t, recordTimeout)
				got = append(got, r.label()+" "+string(r.Payload))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("records:\n%q\nwant:\n%q", got, tc.want)
			}
			if r, ok := rec.tryNext(t, 0); ok {
				t.Fatalf("unexpected record %q %q", r.Action, r.Payload)
			}
		})
	}
}

// TestInterceptorDenyLogged: a Deny is logged with its reason, escaped: a guest's reason with a
// newline and terminal controls does not forge a log line.
func TestInterceptorDenyLogged(t *testing.T) {
	checkLeaks(t)
	h, logs := hostWithLog(t, hclog.Info)
	rec := newRecorder(t, h)
	loadCapsule(t, h, hookCapsule(t, "guard", []interceptorDef{{hookEvent, "out=@", 10}}, ""))
	loadCapsule(t, h, hookCapsule(t, "handler", []interceptorDef{{hookEvent, "rec #handler", 20}}, ""))
	publish(t, h, hookTopic, `{"out":"`+hexOf(2, forged)+`"}`, host.DefaultPrincipal)
	publish(t, h, hookTopic, `{"out":""}`, host.DefaultPrincipal) // the sentinel: the deny's chain has ended
	if r := rec.next(t, recordTimeout); string(r.Payload) != `{"out":""}` {
		t.Fatalf("the handler saw %q", r.Payload)
	}
	out := logs.String()
	if !strings.Contains(out, "interceptor denied the event; the chain stops") || !strings.Contains(out, `hello\n[ERROR] astrid-host: forged\x1b[31m`) {
		t.Fatalf("the deny and its escaped reason are not in the log:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "[ERROR] astrid-host: forged") || strings.ContainsAny(line, "\x1b\u009b\u202e") {
			t.Fatalf("a log line carries the guest's controls: %q", line)
		}
	}
}

// TestInterceptorPublishOrder: a single interceptor receives 10 000 messages in publish order.
// The publisher keeps at most 200 messages ahead of the interceptor, within its queue of 256.
func TestInterceptorPublishOrder(t *testing.T) {
	checkLeaks(t)
	const total, window = 10_000, 200
	h := newHost(t)
	rec := newRecorder(t, h)
	inst, _ := loadCapsule(t, h, hookCapsule(t, "ordered", []interceptorDef{{hookEvent, "rec", 0}}, ""))
	published, received := 0, 0
	for received < total {
		for published < total && published-received < window {
			published++
			publish(t, h, hookTopic, fmt.Sprintf(`{"n":%d}`, published), host.DefaultPrincipal)
		}
		r := rec.next(t, recordTimeout)
		received++
		if want := fmt.Sprintf(`{"n":%d}`, received); string(r.Payload) != want {
			t.Fatalf("message %d: the interceptor received %s", received, r.Payload)
		}
	}
	if st := inst.InterceptorStats(); st.Invoked != total || st.Failed != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestInterceptorFaults: a trapping and a hanging interceptor fail their own invocation only: the
// chain goes on (the hanging one after its call limit), another capsule's interceptor runs
// meanwhile, and both capsules stay Ready, the trapped one with a fresh Store that handles the
// next message.
func TestInterceptorFaults(t *testing.T) {
	checkLeaks(t)
	const limit = 2 * time.Second
	h := newHost(t)
	rec := newRecorder(t, h)
	trapper, _ := loadCapsule(t, h, hookCapsule(t, "trapper", []interceptorDef{{hookEvent, "rec #trapper trap", 10}}, ""))
	hanger, _ := loadCapsule(t, h, hookCapsule(t, "hanger", []interceptorDef{{hookEvent, "rec #hanger hang", 20}}, "[limits]\ncall_timeout = \"2s\""))
	loadCapsule(t, h, hookCapsule(t, "last", []interceptorDef{{hookEvent, "rec #last", 30}}, ""))
	loadCapsule(t, h, hookCapsule(t, "other", []interceptorDef{{"test.v1.other.*", "rec #other", 0}}, ""))
	trapped := h.Bus().Subscribe(host.TopicCapsuleTrapped)
	defer trapped.Close()

	publish(t, h, hookTopic, `{"n":1}`, host.DefaultPrincipal)
	if r := rec.next(t, recordTimeout); r.label() != "trapper" {
		t.Fatalf("first record %q", r.Action)
	}
	hangStart := rec.next(t, recordTimeout)
	if hangStart.label() != "hanger" {
		t.Fatalf("second record %q", hangStart.Action)
	}
	// The hanger is in its call now: another capsule's interceptor is not held up by it.
	start := time.Now()
	publish(t, h, "test.v1.other.y", `{"n":2}`, host.DefaultPrincipal)
	if r := rec.next(t, recordTimeout); r.label() != "other" {
		t.Fatalf("while the hanger hangs, record %q came first", r.Action)
	}
	if took := time.Since(start); took > limit/2 {
		t.Errorf("another capsule's interceptor took %s while the hanger hung", took)
	}
	// The chain goes on after the hanger's call limit.
	if r := rec.next(t, recordTimeout); r.label() != "last" {
		t.Fatalf("after the hanger, record %q", r.Action)
	}
	if took := time.Since(start); took > limit+10*time.Second {
		t.Errorf("the chain went on %s after the hang began; the call limit is %s", took, limit)
	}
	for _, inst := range []*host.Instance{trapper, hanger} {
		if st, reason := inst.State(); st != host.StateReady {
			t.Fatalf("%s is %s (%s)", inst.ID(), st, reason)
		}
		if st := inst.InterceptorStats(); st.Invoked != 1 || st.Failed != 1 {
			t.Fatalf("%s stats %+v", inst.ID(), st)
		}
	}
	kinds := map[string]string{}
	for len(kinds) < 2 {
		for _, m := range nextMessages(t, trapped) {
			var ev struct {
				CapsuleID string `json:"capsule_id"`
				Export    string `json:"export"`
				TrapKind  string `json:"trap_kind"`
			}
			if err := json.Unmarshal(bus.GuestBytes(m.Payload), &ev); err != nil || ev.Export != host.HookExport {
				t.Fatalf("trap event %s", m.Payload)
			}
			kinds[ev.CapsuleID] = ev.TrapKind
		}
	}
	if kinds["hanger"] != "timeout" || kinds["trapper"] == "" {
		t.Fatalf("trap kinds %v", kinds)
	}
	// The trapped capsule handles the next message in a fresh Store.
	publish(t, h, hookTopic, `{"n":3}`, host.DefaultPrincipal)
	if r := rec.next(t, recordTimeout); r.label() != "trapper" || string(r.Payload) != `{"n":3}` {
		t.Fatalf("after the trap, record %q %q", r.Action, r.Payload)
	}
}

// TestInterceptorCallerContext: during an invocation the interceptor sees the message's caller
// context with astrid_get_caller ({"principal","source_id","timestamp"}, upstream's JSON), and
// what it publishes carries the message's principal; a message without a valid principal leaves
// the capsule's own. Outside an invocation (a plain call) the guest sees {}.
func TestInterceptorCallerContext(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	rec := newRecorder(t, h)
	inst, _ := loadCapsule(t, h, hookCapsule(t, "ctx", []interceptorDef{{hookEvent, "rec", 0}}, ""))
	const src = "6f1c1c3e-1234-4abc-9def-0123456789ab"
	ts := time.Date(2026, 5, 6, 7, 8, 9, 250_000_000, time.UTC)
	tests := []struct {
		name, principal, wantPublish, wantCaller string
	}{
		{"another principal", "alice", "alice", `"alice"`},
		{"the default principal", host.DefaultPrincipal, host.DefaultPrincipal, `"default"`},
		{"no principal (a system event)", "", host.DefaultPrincipal, `null`},
		{"an invalid principal", "../../etc", host.DefaultPrincipal, `"../../etc"`},
		{"a principal too long", strings.Repeat("a", 65), host.DefaultPrincipal, `"` + strings.Repeat("a", 65) + `"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := bus.PayloadFromGuest([]byte(`{"p":1}`))
			if err != nil {
				t.Fatal(err)
			}
			h.Bus().Publish(bus.Message{Topic: hookTopic, Payload: p, SourceID: src, Principal: tc.principal, Timestamp: ts})
			r := rec.next(t, recordTimeout)
			if r.Principal != tc.wantPublish {
				t.Fatalf("the interceptor's publish carried principal %q, want %q", r.Principal, tc.wantPublish)
			}
			want := `{"principal":` + tc.wantCaller + `,"source_id":"` + src + `","timestamp":"2026-05-06T07:08:09.250+00:00"}`
			if string(r.Caller) != want {
				t.Fatalf("astrid_get_caller inside: %s\nwant %s", r.Caller, want)
			}
		})
	}
	t.Run("outside an invocation", func(t *testing.T) {
		input := []byte(`{"name":"rec","arguments":[]}`)
		if _, err := inst.Call(context.Background(), host.HookExport, input, 0); err != nil {
			t.Fatal(err)
		}
		if r := rec.next(t, recordTimeout); string(r.Caller) != "{}" || r.Principal != host.DefaultPrincipal {
			t.Fatalf("a plain call sees caller %s and publishes for %q", r.Caller, r.Principal)
		}
	})
}

// TestInterceptorSubscriptions: a capsule without a run export gets no subscription for its
// [[interceptor]]s (they are dispatched instead), so nothing piles up as lag.
func TestInterceptorSubscriptions(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	rec := newRecorder(t, h)
	inst, _ := loadCapsule(t, h, hookCapsule(t, "nosubs", []interceptorDef{{hookEvent, "rec", 0}, {"test.v1.more.*", "rec", 0}}, ""))
	if subs := inst.SubscriptionStats(); len(subs) != 0 {
		t.Fatalf("subscriptions %v", subs)
	}
	publish(t, h, hookTopic, `{}`, host.DefaultPrincipal)
	rec.next(t, recordTimeout)
}

// TestInterceptorQueueFull: a message that finds its capsule's queue full (256 waiting behind a
// hung interceptor) is dropped, counted and reported on astrid.v1.interceptor.dropped; nothing
// is dropped silently.
func TestInterceptorQueueFull(t *testing.T) {
	checkLeaks(t)
	const extra = 3
	h := newHost(t)
	rec := newRecorder(t, h)
	reports := h.Bus().Subscribe(host.TopicInterceptorDropped)
	defer reports.Close()
	inst, _ := loadCapsule(t, h, hookCapsule(t, "slow", []interceptorDef{{hookEvent, "rec hang", 0}}, "[limits]\ncall_timeout = \"30s\""))
	publish(t, h, hookTopic, `{"n":0}`, host.DefaultPrincipal)
	rec.next(t, recordTimeout) // the interceptor is in its call, out of the queue
	for n := 1; n <= host.InterceptorQueueCapacity+extra; n++ {
		publish(t, h, hookTopic, fmt.Sprintf(`{"n":%d}`, n), host.DefaultPrincipal)
	}
	if st := inst.InterceptorStats(); st.Dropped != extra {
		t.Fatalf("stats %+v, want %d dropped", st, extra)
	}
	var dropped, total uint64
	for dropped < extra {
		for _, m := range nextMessages(t, reports) {
			var rep struct {
				CapsuleID    string `json:"capsule_id"`
				Action       string `json:"action"`
				Dropped      uint64 `json:"dropped"`
				DroppedTotal uint64 `json:"dropped_total"`
				Capacity     int    `json:"capacity"`
			}
			if err := json.Unmarshal(bus.GuestBytes(m.Payload), &rep); err != nil || rep.CapsuleID != "slow" || rep.Action != "rec hang" || rep.Capacity != host.InterceptorQueueCapacity {
				t.Fatalf("report %s", m.Payload)
			}
			dropped += rep.Dropped
			total = rep.DroppedTotal
		}
	}
	if dropped != extra || total != extra {
		t.Fatalf("reported %d dropped (total %d), want %d", dropped, total, extra)
	}
}

// TestInterceptorAbandonedCall: a call whose context ends while the guest still runs returns at
// once, but the capsule's next call (here an interceptor invocation for another principal)
// waits until the shim has answered: what the abandoned call publishes afterwards still carries
// the capsule's own principal and caller context, not the next invocation's.
func TestInterceptorAbandonedCall(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	rec := newRecorder(t, h)
	inst, _ := loadCapsule(t, h, hookCapsule(t, "abandoned", []interceptorDef{{hookEvent, "rec #intercepted", 0}}, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := inst.Call(ctx, host.HookExport, []byte(`{"name":"sleep=2000 rec #plain","arguments":[]}`), 0)
	var ce *host.CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "context deadline exceeded") {
		t.Fatalf("the abandoned call returned %v", err)
	}
	publish(t, h, hookTopic, `{"p":1}`, "alice")
	for _, want := range []struct{ label, principal, caller string }{
		{"plain", host.DefaultPrincipal, "{}"},
		{"intercepted", "alice", `"alice"`},
	} {
		r := rec.next(t, recordTimeout)
		if r.label() != want.label || r.Principal != want.principal || !strings.Contains(string(r.Caller), want.caller) {
			t.Fatalf("record %s published for %q with caller %s; want %s for %q with %s", r.label(), r.Principal, r.Caller, want.label, want.principal, want.caller)
		}
	}
}
