package tests

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// triggerCall calls the hook capsule's trigger export (astrid_trigger_hook with the input).
func triggerCall(t *testing.T, inst *host.Instance, req string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := inst.Call(ctx, "trigger", []byte(req), 0)
	return string(out), err
}

// TestTriggerHook: astrid_trigger_hook invokes every other Ready capsule's matching interceptor
// with the payload as upstream re-serialises it and no caller context, and returns the JSON
// results: Continue and Final bytes that are JSON; not empty Continues, Denies, failures or
// non-JSON bytes. The calling capsule's own interceptor is left out.
func TestTriggerHook(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	rec := newRecorder(t, h)
	const event = "test.v1.hook.q"
	caller, _ := loadCapsule(t, h, hookCapsule(t, "caller", []interceptorDef{{event, "out=" + hexOf(0, `{"self":1}`), 0}}, ""))
	for name, action := range map[string]string{
		"cont":    "out=" + hexOf(0, `{"b":1}`),
		"final":   "out=" + hexOf(1, `[1, 2]`),
		"empty":   "rec #empty",
		"deny":    "out=" + hexOf(2, "no"),
		"notjson": "out=" + hexOf(0, "not json"),
		"trap":    "trap",
	} {
		loadCapsule(t, h, hookCapsule(t, name, []interceptorDef{{"test.v1.hook.*", action, 0}}, ""))
	}
	loadCapsule(t, h, hookCapsule(t, "elsewhere", []interceptorDef{{"test.v1.other", "out=" + hexOf(0, `"no"`), 0}}, ""))

	out, err := triggerCall(t, caller, `{"hook":"`+event+`","payload":{"z":1,"a":[2]}}`)
	if err != nil {
		t.Fatal(err)
	}
	var results []json.RawMessage
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	var got []string
	for _, r := range results {
		got = append(got, string(r))
	}
	slices.Sort(got) // the order is the order the interceptors completed in
	if want := []string{`[1,2]`, `{"b":1}`}; !slices.Equal(got, want) {
		t.Fatalf("results %s, want (in any order) %s", out, want)
	}
	r := rec.next(t, recordTimeout)
	if string(r.Payload) != `{"a":[2],"z":1}` || r.Principal != host.DefaultPrincipal {
		t.Fatalf("the interceptor received %s (publishing for %q)", r.Payload, r.Principal)
	}

	tests := []struct {
		name, req, want, wantErr string
	}{
		{"no interceptor matches", `{"hook":"test.v1.none","payload":1}`, "[]", ""},
		{"missing hook", `{"payload":1}`, "", "invalid trigger request: missing field `hook`"},
		{"missing payload", `{"hook":"x"}`, "", "invalid trigger request: missing field `payload`"},
		{"not JSON", `{"hook"`, "", "invalid trigger request: not JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := triggerCall(t, caller, tc.req)
			if tc.wantErr != "" {
				var ge *host.GuestError
				if !errors.As(err, &ge) || !strings.Contains(ge.Message, tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || out != tc.want {
				t.Fatalf("= %s, %v; want %s", out, err, tc.want)
			}
		})
	}
}

// TestTriggerHookNoDeadlock: capsule a's interceptor triggers a hook that capsule b intercepts,
// and b's triggers one that a intercepts. b cannot get a's call slot while a waits for b, so a
// waits-for cycle is refused at once (b's trigger leaves a out) instead of both waiting out their
// call limits.
func TestTriggerHookNoDeadlock(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	limits := "[limits]\ncall_timeout = \"5s\""
	x, _ := loadCapsule(t, h, hookCapsule(t, "x", nil, limits))
	loadCapsule(t, h, hookCapsule(t, "a", []interceptorDef{{"test.v1.hook.a", "trigger=test.v1.hook.b", 0}}, limits))
	loadCapsule(t, h, hookCapsule(t, "b", []interceptorDef{{"test.v1.hook.b", "trigger=test.v1.hook.a", 0}}, limits))
	start := time.Now()
	out, err := triggerCall(t, x, `{"hook":"test.v1.hook.a","payload":{}}`)
	if err != nil {
		t.Fatal(err)
	}
	// x gets a's result, which is b's result, in which b's trigger left a out.
	if out != `[[[]]]` {
		t.Fatalf("result %s, want [[[]]]", out)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("the cycle took %s to resolve", took)
	}
}
