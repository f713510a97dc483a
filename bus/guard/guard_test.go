package guard

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus/topics"
	"github.com/astrid-go/astrid/shared/pb"
)

func TestCheckPayload(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"object", `{"a":[1,2.5,"x",null,true]}`, true},
		{"scalar with spaces", " 1 ", true},
		{"surrogate pair", `"\ud83d\ude00"`, true},
		{"escaped non-surrogate", `"\u00e9\uFFFF"`, true},
		{"UTF-8 text", "\"日本\"", true},
		{"largest float64", "1.7976931348623157e308", true},
		{"underflow is zero", "1e-400", true},
		{"big integer", strings.Repeat("9", 30), true},
		{"depth 127", strings.Repeat("[", 127) + strings.Repeat("]", 127), true},
		{"empty", "", false},
		{"not JSON", "not json at all", false},
		{"trailing data", `{} {}`, false},
		{"invalid UTF-8 in a string", "\"\xff\"", false},
		{"invalid UTF-8 in a key", "{\"\xc3\x28\":1}", false},
		{"surrogate encoded as UTF-8", "\"\xed\xa0\x80\"", false},
		{"lone high surrogate", `"\ud800"`, false},
		{"lone high surrogate at the end", `["\ud800"]`, false},
		{"lone low surrogate", `"\udc00"`, false},
		{"high then non-low", `"\ud800\u0041"`, false},
		{"high then high", `"\ud800\ud800"`, false},
		{"overflowing float", "1e400", false},
		{"overflowing negative float", "-1e400", false},
		{"overflowing float inside", `{"a":[0,1.5e309]}`, false},
		{"overflowing integer", strings.Repeat("9", 400), false},
		{"arrays 128 deep", strings.Repeat("[", 128) + strings.Repeat("]", 128), false},
		{"objects 128 deep", strings.Repeat(`{"a":`, 128) + "1" + strings.Repeat("}", 128), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPayload([]byte(tc.in))
			if tc.ok != (err == nil) || (err != nil && err != ErrPayloadNotJSON) {
				t.Fatalf("CheckPayload(%.60q) = %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
	if ErrPayloadNotJSON.Error() != "IPC payload is not valid JSON" {
		t.Errorf("ErrPayloadNotJSON = %q, not upstream's text", ErrPayloadNotJSON)
	}
}

// testGuard is the guard of a capsule "c" allowed to publish to test.v1.* and subscribe to
// test.v1.*, with interceptor handle 1, a quota of budget bytes a window and a clock the test
// sets.
func testGuard(budget uint64, now *time.Time) *Guard {
	return New(Config{CapsuleID: "c", Publish: []string{"test.v1.*"}, Subscribe: []string{"test.v1.*"},
		BytesPerSec: budget, Interceptors: []uint64{1}}, func() time.Time { return *now })
}

// TestCheckPublishOrder: upstream's order, with its texts; the quota is charged after the
// topic's length and before every other check, so a publish refused later still counts.
func TestCheckPublishOrder(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string
		want    string // "" = allowed
		charged bool
	}{
		{"allowed", "test.v1.x", `{"a":1}`, "", true},
		{"topic too long, not charged", "test.v1." + strings.Repeat("x", 250), "1", "Topic exceeds maximum allowed length (256 bytes)", false},
		{"topic too long before a bad payload", "test.v1." + strings.Repeat("x", 250), "1e400", "Topic exceeds maximum allowed length (256 bytes)", false},
		{"topic not UTF-8, charged", "test.v1.\xff", "1", "Topic is not valid UTF-8", true},
		{"empty segment, charged", "test..v1", "1", "Topic contains empty segments (consecutive dots, leading/trailing dots, or is empty)", true},
		{"too deep, charged", "test.v1.a.b.c.d.e.f.g", "1", "Topic exceeds maximum allowed segments (8)", true},
		{"outside the ACL, charged", "other.x", "1", `Capsule 'c' is not allowed to publish to topic 'other.x' — declared ipc_publish patterns: ["test.v1.*"]`, true},
		{"ACL before JSON", "other.x", "1e400", `Capsule 'c' is not allowed to publish to topic 'other.x'`, true},
		{"payload not JSON, charged", "test.v1.x", `"\ud800"`, "IPC payload is not valid JSON", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			g := testGuard(uint64(len(tc.payload)), &now)
			err := g.CheckPublish(tc.topic, []byte(tc.payload))
			if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
				t.Fatalf("CheckPublish = %v, want %q", err, tc.want)
			}
			// The budget is exactly this payload: if it was charged, one more byte is refused.
			if charged := errors.Is(g.CheckPublish("test.v1.x", []byte("1")), ErrRateLimited); charged != tc.charged {
				t.Fatalf("charged = %v, want %v", charged, tc.charged)
			}
		})
	}
}

// TestCheckPublishRepeatedTopic: a Guard that remembers the last topic it let through (published)
// gives every publish of a sequence — repeats, refusals between them, topics that differ from the
// last one by a byte — the result a fresh Guard gives it alone.
func TestCheckPublishRepeatedTopic(t *testing.T) {
	tooDeep := "test.v1.a.b.c.d.e.f"
	sequences := [][]string{
		{"test.v1.x", "test.v1.x", "other.x", "test.v1.x", "other.x", "other.x"},
		{"other.x", "other.x", "test.v1.x"},
		{"test.v1.x", "test.v1.x.", "test.v1.x", "test..v1", "test.v1.\xff", "test.v1.x"},
		{"test.v1.x", tooDeep, tooDeep + ".g", "test.v1.y", "test.v1.x"},
		{"test.v1.x", "test.v1", "test.v1.x", "", "test.v1.x"},
	}
	for i, seq := range sequences {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			now := time.Unix(0, 0)
			g := testGuard(1<<20, &now)
			for _, topic := range seq {
				got := g.CheckPublish(topic, []byte("1"))
				want := testGuard(1<<20, &now).CheckPublish(topic, []byte("1"))
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%q after the others: %v; alone: %v", topic, got, want)
				}
			}
		})
	}
}

// TestCheckPublishAllocs: a publish to the topic the Guard let through last allocates nothing
// (the shim and the host check every message with it); a new topic allocates its record.
func TestCheckPublishAllocs(t *testing.T) {
	now := time.Unix(0, 0)
	g := testGuard(1<<30, &now)
	payload := []byte(`{"a":1}`)
	for _, tc := range []struct {
		name   string
		topics []string
		want   float64
	}{
		{"repeated", []string{"test.v1.x"}, 0},
		{"alternating", []string{"test.v1.x", "test.v1.y"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			got := testing.AllocsPerRun(100, func() {
				if _, err := g.CheckPublishShapeAt(tc.topics[i%len(tc.topics)], payload, now); err != nil {
					t.Fatal(err)
				}
				i++
			})
			if got != tc.want {
				t.Fatalf("%v allocations per publish; want %v", got, tc.want)
			}
		})
	}
}

func TestCheckPublishQuota(t *testing.T) {
	now := time.Unix(0, 0)
	g := testGuard(10, &now)
	big := []byte(`"` + strings.Repeat("x", MaxPayloadBytes) + `"`)
	if err := g.CheckPublish("test.v1.x", big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("a payload over %d bytes: %v", MaxPayloadBytes, err)
	}
	huge := make([]byte, MaxArgBytes+1)
	if err := g.CheckPublish(strings.Repeat("x", 300), huge); err == nil || err.Error() != "memory allocation of 10485761 bytes exceeds maximum allowed limit of 10485760 bytes" {
		t.Fatalf("an argument over %d bytes: %v", MaxArgBytes, err)
	}
	if err := g.CheckPublish("test.v1.x", []byte("123456789")); err != nil {
		t.Fatal(err)
	}
	if err := g.CheckPublish("test.v1.x", []byte("12")); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("past the budget: %v", err)
	}
	now = now.Add(RateWindow)
	if err := g.CheckPublish("test.v1.x", []byte("12")); err != nil {
		t.Fatalf("in the next window: %v", err)
	}
}

func TestCheckSubscribe(t *testing.T) {
	tests := []struct {
		pattern string
		want    error
		text    string
	}{
		{"test.v1.x", nil, ""},
		{"test.v1.*", nil, ""},
		{"test.v1.*.x", nil, ""}, // "*" may be any segment
		{strings.Repeat("x", 257), topics.ErrPatternTooLong, "Topic pattern exceeds maximum allowed length (256 bytes)"},
		{"test.\xff", topics.ErrPatternNotUTF8, "Topic pattern is not valid UTF-8"},
		{"test..x", topics.ErrPatternEmptySegments, "Topic pattern contains empty segments (consecutive dots, leading/trailing dots, or is empty)"},
		{"test.v1.a.b.c.d.e.f.g", topics.ErrPatternTooManySegments, "Topic pattern exceeds maximum allowed segments (8)"},
		{"test.*", nil, `Capsule 'c' is not allowed to subscribe to topic 'test.*' - declared ipc_subscribe patterns: ["test.v1.*"]`},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			now := time.Unix(0, 0)
			err := testGuard(0, &now).CheckSubscribe(tc.pattern)
			if tc.text == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tc.text || (tc.want != nil && err != tc.want) {
				t.Fatalf("CheckSubscribe = %v, want %q", err, tc.text)
			}
		})
	}
	empty := New(Config{CapsuleID: "c"}, nil)
	if err := empty.CheckSubscribe("a"); err == nil || err.Error() != "Capsule 'c' has no ipc_subscribe declarations - subscribing is denied. Add ipc_subscribe patterns to Capsule.toml [capabilities]" {
		t.Errorf("empty ACL: %v", err)
	}
	if err := empty.CheckPublish("a", []byte("1")); err == nil || err.Error() != "Capsule 'c' has no ipc_publish declarations — publishing is denied. Add ipc_publish patterns to Capsule.toml [capabilities]" {
		t.Errorf("empty ACL: %v", err)
	}
}

// TestHandles: the subscription limit counts interceptors; a live handle cannot be given twice;
// interceptors' handles can be read, not unsubscribed; unknown handles are refused alike.
func TestHandles(t *testing.T) {
	now := time.Unix(0, 0)
	g := testGuard(0, &now) // interceptor handle 1
	for h := uint64(2); h <= MaxSubscriptions; h++ {
		if err := g.CheckSubscribe("test.v1.x"); err != nil {
			t.Fatalf("subscription %d: %v", h, err)
		}
		if err := g.AddSubscription(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.CheckSubscribe("test.v1.x"); err != ErrSubscriptionLimit || err.Error() != "Subscription limit reached (128 max per plugin)" {
		t.Fatalf("past the limit: %v", err)
	}
	if err := g.AddSubscription(MaxSubscriptions + 1); err != ErrSubscriptionLimit {
		t.Fatalf("adding past the limit: %v", err)
	}
	tests := []struct {
		name        string
		h           uint64
		handle      error // CheckHandle
		unsubscribe error // CheckUnsubscribe
	}{
		{"interceptor", 1, nil, ErrInterceptorHandle},
		{"guest", 2, nil, nil},
		{"unknown", 0, ErrHandleNotFound, ErrHandleNotFound},
		{"unknown high", 1 << 63, ErrHandleNotFound, ErrHandleNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := g.CheckHandle(tc.h); err != tc.handle {
				t.Errorf("CheckHandle(%d) = %v, want %v", tc.h, err, tc.handle)
			}
			if err := g.CheckUnsubscribe(tc.h); err != tc.unsubscribe {
				t.Errorf("CheckUnsubscribe(%d) = %v, want %v", tc.h, err, tc.unsubscribe)
			}
		})
	}
	if ErrInterceptorHandle.Error() != "Cannot unsubscribe a runtime-owned interceptor handle" || ErrHandleNotFound.Error() != "Subscription handle not found" {
		t.Error("the handle errors are not upstream's texts")
	}
	g.Unsubscribed(1) // an interceptor's handle stays
	g.Unsubscribed(2)
	if g.CheckHandle(1) != nil || g.CheckHandle(2) != ErrHandleNotFound || g.Handles() != MaxSubscriptions-1 {
		t.Fatalf("after unsubscribing 2: %d handles", g.Handles())
	}
	if err := g.AddSubscription(3); err != ErrHandleCollision || !IsOrdinary(err) {
		t.Fatalf("a live handle again: %v", err)
	}
	if err := g.CheckRecv(3, MaxRecvTimeoutMs); err != nil {
		t.Fatal(err)
	}
	if err := g.CheckRecv(3, MaxRecvTimeoutMs+1); err == nil || IsOrdinary(err) {
		t.Fatalf("a timeout past the clamp: %v", err)
	}
	if err := g.CheckRecv(2, 0); err != ErrHandleNotFound {
		t.Fatalf("recv on a gone handle: %v", err)
	}
}

func TestParseArguments(t *testing.T) {
	tests := []struct {
		in      string
		handle  string // ParseHandle's error, or "" and want
		timeout string // ParseTimeout's error
		want    uint64
	}{
		{"42", "", "", 42},
		{"18446744073709551615", "", "", 1<<64 - 1},
		{"18446744073709551616", "Invalid subscription handle format: value out of range", "Invalid timeout format: value out of range", 0},
		{"", "Invalid subscription handle format: invalid syntax", "Invalid timeout format: invalid syntax", 0},
		{"-1", "Invalid subscription handle format: invalid syntax", "Invalid timeout format: invalid syntax", 0},
		{"\xff", "Subscription handle is not valid UTF-8: invalid utf-8 sequence", "Timeout is not valid UTF-8: invalid utf-8 sequence", 0},
		{strings.Repeat("0", 33), "Subscription handle exceeds maximum allowed length", "Timeout exceeds maximum allowed length", 0},
		{strings.Repeat("0", 31) + "7", "", "", 7},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			for _, f := range []struct {
				parse func([]byte) (uint64, error)
				want  string
			}{{ParseHandle, tc.handle}, {ParseTimeout, tc.timeout}} {
				n, err := f.parse([]byte(tc.in))
				switch {
				case f.want == "" && (err != nil || n != tc.want):
					t.Errorf("%q: %d, %v; want %d", tc.in, n, err, tc.want)
				case f.want != "" && (err == nil || err.Error() != f.want):
					t.Errorf("%q: %v; want %q", tc.in, err, f.want)
				}
			}
		})
	}
	if ClampRecvTimeout(1<<63) != MaxRecvTimeoutMs || ClampRecvTimeout(5) != 5 {
		t.Error("ClampRecvTimeout")
	}
}

func TestConfigFromLoad(t *testing.T) {
	req := &pb.LoadRequest{CapsuleId: "c", IpcPublish: []string{"a"}, IpcSubscribe: []string{"b"}, IpcBytesPerSec: 7,
		InterceptorHandles: []byte(`[{"handle_id":1,"action":"x","topic":"t"},{"handle_id":2,"action":"y","topic":"u"}]`)}
	cfg, err := ConfigFromLoad(req)
	if err != nil || cfg.CapsuleID != "c" || cfg.Publish[0] != "a" || cfg.Subscribe[0] != "b" || cfg.BytesPerSec != 7 || len(cfg.Interceptors) != 2 || cfg.Interceptors[1] != 2 {
		t.Fatalf("ConfigFromLoad = %+v, %v", cfg, err)
	}
	req.InterceptorHandles = []byte("{")
	if _, err := ConfigFromLoad(req); err == nil {
		t.Fatal("bad interceptor JSON accepted")
	}
}
