package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
)

// ipcSummary is what the ipc test capsule's poll and recv exports output.
type ipcSummary struct {
	Data    []json.RawMessage `json:"data"`
	Topics  []string          `json:"topics"`
	Seqs    []uint64          `json:"seqs"`
	Sources []string          `json:"sources"`
	Lagged  uint64            `json:"lagged"`
}

func call(t *testing.T, inst *host.Instance, export string, input any) string {
	t.Helper()
	var in []byte
	switch v := input.(type) {
	case string:
		in = []byte(v)
	default:
		var err error
		if in, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := inst.Call(context.Background(), export, in, 0)
	if err != nil {
		t.Fatalf("%s.%s(%s): %v", inst.ID(), export, in, err)
	}
	return string(out)
}

func summary(t *testing.T, out string) ipcSummary {
	t.Helper()
	var s ipcSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	return s
}

// checkInvariant asserts delivered + lagged + queued = matched for every subscription of insts.
func checkInvariant(t *testing.T, insts ...*host.Instance) {
	t.Helper()
	for _, inst := range insts {
		for h, st := range inst.SubscriptionStats() {
			if st.Delivered+st.Lagged+st.Queued != st.Matched {
				t.Errorf("%s handle %d: delivered %d + lagged %d + queued %d != matched %d", inst.ID(), h, st.Delivered, st.Lagged, st.Queued, st.Matched)
			}
		}
	}
}

func TestPingPong(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	pong, _ := loadCapsule(t, h, "pong", host.LoadOptions{RunLoop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pong.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	ping, _ := loadCapsule(t, h, "ping")
	want := ""
	for k := 1; k <= 50; k++ {
		want += fmt.Sprintf("pong %d\n", k)
	}
	if got := call(t, ping, "ping", "50"); got != want {
		t.Fatalf("ping 50:\n%s\nwant\n%s", got, want)
	}
	checkInvariant(t, ping, pong)
}

func TestIPCExchange(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	a, _ := loadCapsule(t, h, "ipc")
	b, _ := loadCapsule(t, h, "ipc")
	handle := call(t, b, "subscribe", "test.v1.*")
	call(t, a, "publish", map[string]any{"topic": "test.v1.greeting", "payload": map[string]string{"hello": "b"}})
	call(t, a, "publish", map[string]any{"topic": "test.v1.deep.topic", "payload": "text"})
	s := summary(t, call(t, b, "poll", handle))
	if len(s.Data) != 2 || string(s.Data[0]) != `{"hello":"b"}` || s.Topics[1] != "test.v1.deep.topic" || s.Seqs[0] >= s.Seqs[1] {
		t.Fatalf("b received %+v", s)
	}
	checkInvariant(t, a, b)
}

// guestFailure calls an export that must fail and returns the guest error's message.
func guestFailure(t *testing.T, inst *host.Instance, export string, input any) string {
	t.Helper()
	in, err := json.Marshal(input)
	if s, ok := input.(string); ok {
		in = []byte(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = inst.Call(context.Background(), export, in, 0)
	var ge *host.GuestError
	if !errors.As(err, &ge) {
		t.Fatalf("%s(%s): %v, want a guest error", export, in, err)
	}
	return ge.Message
}

// TestIPCRefusals: requests the capsule may not make trap with upstream's messages, and the
// capsule stays healthy (its shim refused them; the host never saw them).
func TestIPCRefusals(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "ipc")
	pub := func(topic string, payload any) map[string]any {
		return map[string]any{"topic": topic, "payload": payload}
	}
	tests := []struct {
		export string
		input  any
		want   string
	}{
		{"publish", pub("other.topic", 1), `astrid_ipc_publish: Capsule 'ipc' is not allowed to publish to topic 'other.topic' — declared ipc_publish patterns: ["test.v1.*"]`},
		{"publish", pub("test.v1", 1), `astrid_ipc_publish: Capsule 'ipc' is not allowed to publish to topic 'test.v1'`},
		{"publish", pub("test.v1..x", 1), "astrid_ipc_publish: Topic contains empty segments (consecutive dots, leading/trailing dots, or is empty)"},
		{"publish", pub("test.v1.a.b.c.d.e.f.g", 1), "astrid_ipc_publish: Topic exceeds maximum allowed segments (8)"},
		{"publish", pub("test.v1."+strings.Repeat("x", 250), 1), "astrid_ipc_publish: Topic exceeds maximum allowed length (256 bytes)"},
		{"publish", `{"topic":"test.v1.x","raw":"{\"a\":"}`, "astrid_ipc_publish: IPC payload is not valid JSON"},
		{"publish", `{"topic":"test.v1.x","payload":{"a":1}}`, ""}, // valid: the control case
		{"subscribe", "other.*", `astrid_ipc_subscribe: Capsule 'ipc' is not allowed to subscribe to topic 'other.*' - declared ipc_subscribe patterns: ["test.v1.*", "astrid.v1.capsule.*"]`},
		{"subscribe", "test.*", `astrid_ipc_subscribe: Capsule 'ipc' is not allowed to subscribe to topic 'test.*'`}, // wider than the ACL
		{"subscribe", "test..v1", "astrid_ipc_subscribe: Topic pattern contains empty segments"},
		{"subscribe", "test.v1.a.b.c.d.e.f.g", "astrid_ipc_subscribe: Topic pattern exceeds maximum allowed segments (8)"},
		{"poll", "999", "no subscription 999 in this instance"}, // the SDK's own check
	}
	for _, tc := range tests {
		if tc.want == "" {
			call(t, inst, tc.export, tc.input)
			continue
		}
		if got := guestFailure(t, inst, tc.export, tc.input); !strings.Contains(got, tc.want) {
			t.Errorf("%s(%v):\n got %s\nwant %s", tc.export, tc.input, got, tc.want)
		}
	}
	if st, reason := inst.State(); st != host.StateReady {
		t.Fatalf("after refusals: %s (%s)", st, reason)
	}
}

// TestIPCQuota: a payload over 5 MiB, and more than the capsule's [limits] ipc_bytes_per_sec in
// one second, are refused with upstream's messages; the capsule stays healthy.
func TestIPCQuota(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "ipc")
	if got := guestFailure(t, inst, "publish", map[string]any{"topic": "test.v1.big", "bytes": 5<<20 + 1}); !strings.Contains(got, "Payload too large") {
		t.Fatalf("6 MiB payload: %s", got)
	}
	// A capsule allowed 1 MiB a second publishes 3 × 400 KiB in one call, far quicker than a
	// second: the third exceeds the window's budget.
	limited := capsuleVariant(t, "ipc", "ipc_bytes_per_sec = \"1MiB\"\n") // the manifest ends in [limits]
	small, _ := loadCapsule(t, h, limited)
	if got := guestFailure(t, small, "publish", map[string]any{"topic": "test.v1.flood", "bytes": 400 << 10, "count": 3}); !strings.Contains(got, "Rate limit exceeded") {
		t.Fatalf("flood: %s", got)
	}
	for _, i := range []*host.Instance{inst, small} {
		if st, reason := i.State(); st != host.StateReady {
			t.Fatalf("after quota refusals: %s (%s)", st, reason)
		}
	}
}

// TestSubscriptionLimit: 128 subscriptions per capsule instance; handles are not reused; the
// 129th live subscription is refused.
func TestSubscriptionLimit(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "ipc")
	for i := range guard.MaxSubscriptions {
		if got := call(t, inst, "subscribe", "test.v1.*"); got != fmt.Sprint(i+1) {
			t.Fatalf("subscription %d got handle %s", i+1, got)
		}
	}
	call(t, inst, "unsubscribe", "7")
	if got := call(t, inst, "subscribe", "test.v1.*"); got != "129" {
		t.Fatalf("after an unsubscribe: handle %s, want 129", got)
	}
	if got := guestFailure(t, inst, "subscribe", "test.v1.*"); !strings.Contains(got, "Subscription limit reached (128 max per plugin)") {
		t.Fatalf("129th live subscription: %s", got)
	}
}

// TestSlowSubscriberLags: a subscriber that does not keep up loses the oldest messages, counted
// exactly in lagged, while one that keeps up loses nothing.
func TestSlowSubscriberLags(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	pub, _ := loadCapsule(t, h, "ipc")
	fast, _ := loadCapsule(t, h, "ipc")
	slow, _ := loadCapsule(t, h, "ipc")
	fh := call(t, fast, "subscribe", "test.v1.lag")
	sh := call(t, slow, "subscribe", "test.v1.lag")
	var got []json.RawMessage
	for range 11 {
		call(t, pub, "publish", map[string]any{"topic": "test.v1.lag", "count": 100})
		s := summary(t, call(t, fast, "poll", fh))
		if s.Lagged != 0 {
			t.Fatalf("the fast subscriber lagged %d", s.Lagged)
		}
		got = append(got, s.Data...)
	}
	if len(got) != 1100 {
		t.Fatalf("the fast subscriber got %d messages, want 1100", len(got))
	}
	s := summary(t, call(t, slow, "poll", sh))
	if len(s.Data) != bus.DefaultQueueMessages || s.Lagged != 1100-bus.DefaultQueueMessages {
		t.Fatalf("the slow subscriber got %d messages and lagged %d; want %d and %d", len(s.Data), s.Lagged, bus.DefaultQueueMessages, 1100-bus.DefaultQueueMessages)
	}
	// It keeps the newest: the last message is the last published.
	if string(s.Data[len(s.Data)-1]) != `{"n":100}` || string(s.Data[0]) != fmt.Sprintf(`{"n":%d}`, 1+(1100-bus.DefaultQueueMessages)%100) {
		t.Fatalf("the slow subscriber kept %s … %s", s.Data[0], s.Data[len(s.Data)-1])
	}
	checkInvariant(t, pub, fast, slow)
}

// TestRecv: recv wakes when a message is published, and times out with an empty envelope.
func TestRecv(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	pub, _ := loadCapsule(t, h, "ipc")
	sub, _ := loadCapsule(t, h, "ipc")
	handle := call(t, sub, "subscribe", "test.v1.wake")
	hn := 0
	fmt.Sscan(handle, &hn)

	out := make(chan string, 1)
	go func() {
		o, err := sub.Call(context.Background(), "recv", []byte(fmt.Sprintf(`{"handle":%d,"timeout_ms":30000}`, hn)), 0)
		if err != nil {
			o = []byte(err.Error())
		}
		out <- string(o)
	}()
	waitFor(t, 10*time.Second, "the subscriber to wait in recv", func() bool { return storeBusy(sub) })
	call(t, pub, "publish", map[string]any{"topic": "test.v1.wake", "payload": "up"})
	select {
	case o := <-out:
		if s := summary(t, o); len(s.Data) != 1 || string(s.Data[0]) != `"up"` {
			t.Fatalf("recv woke with %s", o)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("recv did not wake on publish")
	}
	s := summary(t, call(t, sub, "recv", map[string]any{"handle": hn, "timeout_ms": 100}))
	if len(s.Data) != 0 {
		t.Fatalf("recv with nothing published: %+v", s)
	}
	checkInvariant(t, pub, sub)
}

// TestUnloadEndsRecv: unloading a capsule blocked in recv ends the call at once.
func TestUnloadEndsRecv(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	sub, _ := loadCapsule(t, h, "ipc")
	call(t, sub, "subscribe", "test.v1.never")
	errc := make(chan error, 1)
	go func() {
		_, err := sub.Call(context.Background(), "recv", []byte(`{"handle":1,"timeout_ms":60000}`), time.Hour)
		errc <- err
	}()
	waitFor(t, 10*time.Second, "the subscriber to wait in recv", func() bool { return storeBusy(sub) })
	sub.Stop(context.Background())
	select {
	case err := <-errc:
		var ge *host.GuestError
		var ce *host.CallError
		if !(errors.As(err, &ge) && ge.Kind == pb.GuestError_CANCELLED) && !errors.As(err, &ce) {
			t.Fatalf("recv interrupted by unload: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("recv did not end when the capsule unloaded")
	}
}

// TestForgedRequests: a shim that sends requests a correct shim never sends (here rawshim,
// forging them) is refused by the host, which publishes astrid.v1.capsule.crashed and stops it.
func TestForgedRequests(t *testing.T) {
	raw := rawShim(t)
	// A Publish frame of one publication more than a shim puts in a frame, each one the ACL
	// allows: only the count is wrong.
	var overfull []byte
	for range callwire.MaxPublishBatch + 1 {
		overfull = callwire.AppendPublication(overfull, "test.v1.x", []byte("1"))
	}
	overfullFrame, err := json.Marshal(map[string]any{"rpc": "frame", "kind": callwire.Publish, "id": 1, "length": len(overfull), "body": overfull})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		forgery string
		want    string
	}{
		{"publish outside the ACL", `{"rpc":"publish","topic":"other.topic","payload":"1"}`, "is not allowed to publish to topic 'other.topic'"},
		{"invalid payload", `{"rpc":"publish","topic":"test.v1.x","payload":"{"}`, "IPC payload is not valid JSON"},
		{"payload beyond float64", `{"rpc":"publish","topic":"test.v1.x","payload":"1e400"}`, "IPC payload is not valid JSON"}, // a correct shim refuses it itself
		{"oversize payload", `{"rpc":"publish","topic":"test.v1.x","bytes":6291456}`, "Payload too large"},
		{"subscribe outside the ACL", `{"rpc":"subscribe","topic":"other.*"}`, "is not allowed to subscribe to topic 'other.*'"},
		{"another capsule's handle", `{"rpc":"poll","handle":1}`, "Subscription handle not found"},
		{"unsubscribe another's handle", `{"rpc":"unsubscribe","handle":1}`, "Subscription handle not found"},
		{"recv past the clamp", `{"rpc":"recv","handle":1,"timeout_ms":999999}`, "Subscription handle not found"},
		// The call connection (shared/callwire): host calls a correct shim never sends, and frames.
		{"host call of no function", `{"rpc":"hostcall","op":9999}`, "unknown host function operation 9999"},
		{"host call with an extra argument", `{"rpc":"hostcall","op":1,"args":["a","b"]}`, "astrid_kv_get takes 1 argument(s), got 2"},
		{"host call with an oversize key", `{"rpc":"hostcall","op":1,"args":["` + strings.Repeat("k", 4097) + `"]}`, "key: memory allocation of 4097 bytes exceeds maximum allowed limit of 4096 bytes"},
		{"frame only the host sends", `{"rpc":"frame","kind":1}`, "a call frame, which only the host sends"},
		{"frame of an unknown kind", `{"rpc":"frame","kind":99}`, "a kind 99 frame, which only the host sends"},
		{"frame longer than any request", `{"rpc":"frame","kind":3,"length":4294967295}`, "frame too large: a host call frame of 4294967295 bytes"},
		{"result of a call never made", `{"rpc":"frame","kind":2,"id":1000}`, "a call result for call 1000, which the host never sent"},
		// Publish frames and the IPC host calls.
		{"published frame, which only the host sends", `{"rpc":"frame","kind":8}`, "a published frame, which only the host sends"},
		{"publish frame longer than any batch", `{"rpc":"frame","kind":7,"length":4294967295}`, "frame too large: a publish frame of 4294967295 bytes"},
		{"publish frame that does not decode", `{"rpc":"frame","kind":7,"length":3,"body":"////"}`, "decode a publish frame"},
		{"publish frame of more publications than a batch holds", string(overfullFrame), "a publish frame of more than 512 publications"},
		{"recv with a short handle", `{"rpc":"hostcall","op":83,"args":["1234567","12345678"]}`, "handle: 7 bytes; an IPC host call carries it in 8"},
		{"poll with a long handle", `{"rpc":"hostcall","op":82,"args":["123456789"]}`, "handle: memory allocation of 9 bytes exceeds maximum allowed limit of 8 bytes"},
		{"recv with a short timeout block", `{"rpc":"hostcall","op":83,"args":["12345678","1"]}`, "timeout_ms: 1 bytes; an IPC host call carries it in 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, func(c *host.Config) {
				s, err := host.VerifyShim(raw)
				if err != nil {
					t.Fatal(err)
				}
				c.Shim = s
			})
			victim, _ := loadCapsule(t, h, "ipc") // the other capsule owns handle 1
			_ = victim
			crashes := h.Bus().Subscribe(host.TopicCapsuleCrashed)
			defer crashes.Close()
			forger, _ := loadCapsule(t, h, "ipc")
			out, err := forger.Call(context.Background(), "forge", []byte(tc.forgery), 0)
			var ce *host.CallError
			switch {
			case err == nil:
				if !strings.Contains(string(out), "no longer trusted") || !strings.Contains(string(out), tc.want) {
					t.Fatalf("host's answer to the forgery: %s", out)
				}
			case errors.As(err, &ce): // the host stopped the forger before its call was answered
			default:
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the forger to be stopped", func() bool { return !processAlive(forger.Pid()) })
			if st, reason := forger.State(); st != host.StateFailed || !strings.Contains(reason, tc.want) {
				t.Fatalf("forger: %s (%s)", st, reason)
			}
			env := crashes.Poll(1 << 20)
			if len(env.Messages) != 1 || !strings.Contains(string(env.Messages[0].Payload), "no longer trusted") {
				t.Fatalf("crash events: %+v", env.Messages)
			}
			if st, _ := victim.State(); st != host.StateReady {
				t.Fatalf("the other capsule is %s", st)
			}
		})
	}
}

// TestInterceptorHandles: the host subscribes a run-loop capsule's [[interceptor]] events for it
// (the ipc capsule exports run); the guest finds them with astrid_get_interceptor_handles, reads
// them, and they come first (1..N). A capsule without run gets none (TestInterceptorSubscriptions).
func TestInterceptorHandles(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	dir := capsuleVariant(t, "ipc", "\n[[interceptor]]\nevent = \"test.v1.hook.*\"\naction = \"on_hook\"\n")
	inst, _ := loadCapsule(t, h, dir)
	if got := call(t, inst, "interceptors", ""); got != `[{"handle_id":1,"action":"on_hook","topic":"test.v1.hook.*"}]` {
		t.Fatalf("interceptor handles: %s", got)
	}
	if got := call(t, inst, "subscribe", "test.v1.other"); got != "2" {
		t.Fatalf("the first guest subscription got handle %s, want 2", got)
	}
	call(t, inst, "publish", map[string]any{"topic": "test.v1.hook.fired", "payload": 7})
	if s := summary(t, call(t, inst, "poll", "1")); len(s.Data) != 1 || string(s.Data[0]) != "7" {
		t.Fatalf("interceptor handle received %+v", s)
	}
	checkInvariant(t, inst)
}
