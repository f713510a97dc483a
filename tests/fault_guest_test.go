package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/shared/pb"
)

// Faults of the guest: it traps; it is unloaded while it sleeps or waits in recv; it is handed
// the largest payloads the runtime takes, and one byte more.

// unloadBound is how long unloading a capsule whose guest is blocked may take: Stop returns, and
// the blocked call has failed, within it.
const unloadBound = time.Second

func guestFaults() []faultCase {
	// trap calls an export that traps; the call fails with a guest error of that kind.
	trap := func(export, kind string) func(t *testing.T, r *faultRun) {
		return func(t *testing.T, r *faultRun) {
			_, err := r.victim.Call(context.Background(), export, nil, 2*time.Second)
			var ge *host.GuestError
			if !errors.As(err, &ge) || ge.KindName() != kind {
				t.Fatalf("call to %s: %v, want a guest error of kind %s", export, err, kind)
			}
		}
	}
	return []faultCase{
		{name: "guest unreachable", inject: trap("boom", "unreachable"), trap: "unreachable",
			reason: "call to boom trapped: wasm `unreachable` instruction executed", backtrace: "module offset",
			victim: func(t *testing.T) (string, host.LoadOptions) {
				return watCapsule(t, "unreachable", unreachableWAT, fastRestartFaulty), host.LoadOptions{}
			}},
		{name: "guest Go panic", inject: trap("panic", "panic"), trap: "panic",
			reason: "call to panic panicked: faulty: deliberate panic", backtrace: "main.doPanic"},
		{name: "infinite loop (epoch)", inject: trap("spin", "timeout"), trap: "timeout",
			reason: "call to spin hit its time limit of 2s", backtrace: "main.spin"},
		{name: "memory past the limit", inject: trap("hog", "out_of_memory"), trap: "out_of_memory",
			reason: "call to hog ran out of memory: the guest reached its limit of 24 MiB (three quarters of [limits] memory, 32 MiB)"},
		{name: "stack overflow", inject: trap("recurse", "stack_overflow"), trap: "stack_overflow",
			reason: "call to recurse overflowed the WebAssembly stack", backtrace: "main.descend"},
		{name: "unloaded while the guest sleeps", outcome: unloaded, inject: unloadBlocked("sleep", "600000", nil)},
		{name: "unloaded while the guest waits in recv", outcome: unloaded,
			victim: func(t *testing.T) (string, host.LoadOptions) {
				return capsuleVariant(t, "ipc", "\n[restart]\nbackoff = \"10ms\"\n"), host.LoadOptions{}
			},
			inject: unloadBlocked("recv", `{"handle":1,"timeout_ms":60000}`, func(t *testing.T, r *faultRun) {
				if h := call(t, r.victim, "subscribe", "test.v1.never"); h != "1" {
					t.Fatalf("subscription handle %s", h)
				}
			})},
		{name: "10 MiB payloads", victim: bigPayloadVictim, inject: bigPayloads},
	}
}

// unloadBlocked returns a fault that starts a call of export that blocks in the guest (after
// prepare, if given), waits until the guest is in it, and unloads the victim: Stop returns within
// unloadBound, and the blocked call fails as cancelled within it.
func unloadBlocked(export, input string, prepare func(t *testing.T, r *faultRun)) func(t *testing.T, r *faultRun) {
	return func(t *testing.T, r *faultRun) {
		if prepare != nil {
			prepare(t, r)
		}
		type result struct {
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		go func() {
			_, err := r.victim.Call(context.Background(), export, []byte(input), time.Hour)
			done <- result{err, time.Now()}
		}()
		waitFor(t, 10*time.Second, "the guest to block in "+export, func() bool { return storeBusy(r.victim) })
		r.t0 = time.Now()
		r.victim.Stop(context.Background())
		stopped := time.Since(r.t0)
		var res result
		select {
		case res = <-done:
		case <-time.After(eventTimeout):
			t.Fatalf("the call to %s did not end when the capsule was unloaded", export)
		}
		r.detect = res.at.Sub(r.t0)
		t.Logf("Stop returned after %s; the blocked call ended after %s: %v", stopped, r.detect, res.err)
		if stopped > unloadBound || r.detect > unloadBound {
			t.Errorf("unloading took %s and ended the blocked call after %s; the bound is %s", stopped, r.detect, unloadBound)
		}
		var ge *host.GuestError
		var ce *host.CallError
		switch {
		case errors.As(res.err, &ge) && ge.Kind == pb.GuestError_CANCELLED &&
			ge.Message == fmt.Sprintf("call to %s interrupted: the capsule is unloading", export):
		case errors.As(res.err, &ce) && strings.Contains(ce.Reason, "during the call"):
			// The shim exited before its answer reached the host: the call still ends at once.
		default:
			t.Fatalf("the call blocked in %s, interrupted by the unload: %v", export, res.err)
		}
	}
}

// bigPayloadVictim is the faulty capsule with room for 10 MiB payloads, allowed to publish.
func bigPayloadVictim(t *testing.T) (string, host.LoadOptions) {
	dir := capsuleVariant(t, "faulty", fastRestartFaulty+"\n[capabilities]\nipc_publish = [\"test.v1.*\"]\n")
	manifest := filepath.Join(dir, "Capsule.toml")
	toml, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(toml, []byte(`memory = "32MiB"`)) {
		t.Fatalf("the faulty capsule's manifest no longer says memory = \"32MiB\":\n%s", toml)
	}
	toml = bytes.Replace(toml, []byte(`memory = "32MiB"`), []byte(`memory = "256MiB"`), 1)
	if err := os.WriteFile(manifest, toml, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, host.LoadOptions{}
}

// bigPayloads hands the victim the largest payloads the runtime takes, and one byte more:
//   - a call input of exactly 10 MiB (host.MaxInputBytes) comes back intact from echo; one byte
//     more is refused before the guest runs, naming the limit;
//   - through the bus, exactly the capsule's default budget of 10 MiB a second in one call (1
//     byte, then payloads of exactly the 5 MiB payload limit and of 5 MiB - 1), each payload
//     reaching its subscriber intact; one byte more in a window (1 byte, 5 MiB, 5 MiB, from a
//     second instance with a window of its own) is refused at the last payload as over the
//     rate limit; a payload of 5 MiB + 1 and one of 10 MiB are refused as too large, and one of
//     10 MiB + 1 as more than a guest's payload may be.
//
// A window's charges are made as the guest publishes, while the shim sends the payloads on in the
// background; they are ordered so that each charge that must share a window with the first comes
// before the shim waits for the host to take a 5 MiB batch.
func bigPayloads(t *testing.T, r *faultRun) {
	ctx := context.Background()
	in := bytes.Repeat([]byte("0123456789abcdef"), host.MaxInputBytes/16)
	t1 := time.Now()
	out, err := r.victim.Call(ctx, "echo", in, 30*time.Second)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("echo of 10 MiB: %d bytes back, %v", len(out), err)
	}
	t.Logf("a 10 MiB input and output took %s", time.Since(t1))
	r.t0 = time.Now()
	_, err = r.victim.Call(ctx, "echo", append(in, '!'), 0)
	r.detect = time.Since(r.t0)
	var ce *host.CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, fmt.Sprintf("input of %d bytes exceeds the %d-byte (10 MiB) limit", host.MaxInputBytes+1, host.MaxInputBytes)) {
		t.Fatalf("echo of 10 MiB + 1 byte: %v", err)
	}

	const limit, window = guard.MaxPayloadBytes, guard.DefaultBytesPerSecond
	subs := make([]*bus.Subscription, 3)
	for k := range subs {
		subs[k] = r.h.Bus().Subscribe(fmt.Sprintf("test.v1.faulty.%d", k+1))
		defer subs[k].Close()
	}
	publish := func(inst *host.Instance, sizes ...int) error {
		var fields []string
		for _, s := range sizes {
			fields = append(fields, fmt.Sprint(s))
		}
		_, err := inst.Call(ctx, "publish", []byte(strings.Join(fields, ",")), 30*time.Second)
		return err
	}
	refusal := func(err error, want string) {
		t.Helper()
		var ge *host.GuestError
		if !errors.As(err, &ge) || !strings.Contains(ge.Message, want) {
			t.Fatalf("publish:\n got %v\nwant a guest error saying %s", err, want)
		}
	}
	payload := func(size int) string { return `{"type":"custom","data":"` + strings.Repeat("x", size-2) + `"}` }
	if err := publish(r.victim, 1, limit, window-limit-1); err != nil {
		t.Fatalf("publishing exactly 10 MiB in a window: %v", err)
	}
	for k, want := range []string{`{"type":"custom","data":1}`, payload(limit), payload(window - limit - 1)} {
		env := subs[k].Poll(2 * limit)
		if len(env.Messages) != 1 || env.Lagged != 0 || string(env.Messages[0].Payload) != want {
			t.Fatalf("subscriber %d got %d messages (lagged %d), want one of %d bytes", k+1, len(env.Messages), env.Lagged, len(want))
		}
	}
	second, _ := loadCapsule(t, r.h, r.victim.Manifest().Dir)
	refusal(publish(second, 1, limit, limit), fmt.Sprintf("Rate limit exceeded (%d bytes already published in this 1 s window; %d more would exceed the limit of %d bytes per second)", limit+1, limit, window))
	if st := subs[2].Stats(); st.Matched != 1 {
		t.Fatalf("the payload past the window's budget was published: %+v", st)
	}
	for _, tc := range []struct {
		size int
		want string
	}{
		{limit + 1, fmt.Sprintf("Payload too large (%d bytes; the limit is %d)", limit+1, limit)},
		{host.MaxInputBytes, fmt.Sprintf("Payload too large (%d bytes; the limit is %d)", host.MaxInputBytes, limit)},
		{host.MaxInputBytes + 1, fmt.Sprintf("memory allocation of %d bytes exceeds maximum allowed limit of %d bytes", host.MaxInputBytes+1, host.MaxInputBytes)},
	} {
		refusal(publish(r.victim, tc.size), tc.want)
	}
	if st := subs[0].Stats(); st.Matched != 2 {
		t.Fatalf("a refused payload was published: %+v", st)
	}
}
