package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/host"
)

// Faults on the bus: a capsule that publishes more than its quota, and one that subscribes to a
// busy topic and never reads it.

// floodQuota is the flooding victim's [limits] ipc_bytes_per_sec.
const floodQuota = 64 << 10

// publishBound is how long one publish call may take: a publisher is never held up by its
// subscribers.
const publishBound = 2 * time.Second

func ipcFaults() []faultCase {
	return []faultCase{
		{name: "publish flood against the quota", inject: publishFlood,
			victim: func(t *testing.T) (string, host.LoadOptions) {
				// The manifest ends in its [limits] table.
				return capsuleVariant(t, "ipc", fmt.Sprintf("ipc_bytes_per_sec = %d\n", floodQuota)), host.LoadOptions{}
			}},
		{name: "slow subscriber", inject: slowSubscriber,
			victim: func(t *testing.T) (string, host.LoadOptions) { return capsules["ipc"], host.LoadOptions{} }},
	}
}

// publishFlood has the victim publish 200 KiB a call, in 1 KiB messages, call after call for more
// than a second, against its quota of 64 KiB a second: every call is refused with the quota's
// error once the window's budget is spent; the first window takes exactly 64 messages; in all,
// no more than 64 KiB a window reaches the bus; and the capsule is not treated as compromised
// (the host's own check of the quota agrees with the shim's).
func publishFlood(t *testing.T, r *faultRun) {
	sub := r.h.Bus().Subscribe("test.v1.flood")
	defer sub.Close()
	const size, perCall = 1 << 10, 200
	req := []byte(fmt.Sprintf(`{"topic":"test.v1.flood","bytes":%d,"count":%d}`, size, perCall))
	var calls int
	for calls = 0; calls == 0 || time.Since(r.t0) < guard.RateWindow*6/5; calls++ {
		_, err := r.victim.Call(context.Background(), "publish", req, 0)
		r.events.drain() // each refusal traps the call, and the host says so
		var ge *host.GuestError
		if !errors.As(err, &ge) || !strings.Contains(ge.Message, "astrid_ipc_publish: Rate limit exceeded (") {
			t.Fatalf("flood call %d: %v, want the quota's refusal", calls+1, err)
		}
		if calls == 0 {
			r.detect = time.Since(r.t0)
			want := fmt.Sprintf("Rate limit exceeded (%d bytes already published in this 1 s window; %d more would exceed the limit of %d bytes per second)", floodQuota, size, floodQuota)
			if st := sub.Stats(); st.Matched != floodQuota/size || !strings.Contains(ge.Message, want) {
				t.Fatalf("the first flood call published %d messages and said %q; want %d and %q", st.Matched, ge.Message, floodQuota/size, want)
			}
		}
	}
	elapsed := time.Since(r.t0)
	windows := uint64(elapsed/guard.RateWindow) + 1
	st := sub.Stats()
	t.Logf("%d flood calls in %s: %d of %d messages published", calls, elapsed, st.Matched, calls*perCall)
	if st.Matched*size > windows*floodQuota {
		t.Fatalf("%d bytes were published in %s, more than %d windows of %d bytes", st.Matched*size, elapsed, windows, floodQuota)
	}
	if st.Lagged != 0 {
		t.Fatalf("the flood's subscriber lagged: %+v", st)
	}
	// A host function's refusal ends the call as a trap; the host reports each one.
	traps := r.events.all(host.TopicCapsuleTrapped, r.victim.ID())
	for _, ev := range traps {
		if ev.Export != "publish" || !strings.Contains(ev.Message, "Rate limit exceeded") {
			t.Fatalf("trap event %+v", ev)
		}
	}
	if len(traps) != calls {
		t.Fatalf("%d trap events for %d refused calls", len(traps), calls)
	}
}

// slowSubscriber subscribes the victim to a topic another capsule publishes 3000 messages on, in
// rounds of 500, while a third capsule reads every round: the victim never reads until the end,
// so its queue keeps the newest 1024 messages and counts exactly the other 1976 as lagged; the
// reader loses nothing; and no publish call is held up by the full queue.
func slowSubscriber(t *testing.T, r *faultRun) {
	const rounds, perRound = 6, 500
	const total = rounds * perRound
	handle := call(t, r.victim, "subscribe", "test.v1.busy")
	pub, _ := loadCapsule(t, r.h, "ipc")
	reader, _ := loadCapsule(t, r.h, "ipc")
	rh := call(t, reader, "subscribe", "test.v1.busy")
	r.t0 = time.Now()
	var slowest time.Duration
	for k := range rounds {
		t1 := time.Now()
		call(t, pub, "publish", map[string]any{"topic": "test.v1.busy", "count": perRound})
		slowest = max(slowest, time.Since(t1))
		if s := summary(t, call(t, reader, "poll", rh)); len(s.Data) != perRound || s.Lagged != 0 {
			t.Fatalf("round %d: the reader got %d messages and lagged %d", k+1, len(s.Data), s.Lagged)
		}
	}
	t.Logf("%d publish calls of %d messages each; the slowest took %s", rounds, perRound, slowest)
	if slowest > publishBound {
		t.Fatalf("a publish call took %s (bound %s): the full queue held the publisher up", slowest, publishBound)
	}
	var hn uint64
	fmt.Sscan(handle, &hn)
	want := bus.Stats{Matched: total, Lagged: total - bus.DefaultQueueMessages, Queued: bus.DefaultQueueMessages}
	if st := r.victim.SubscriptionStats()[hn]; st.Matched != want.Matched || st.Lagged != want.Lagged || st.Queued != want.Queued || st.Delivered != 0 {
		t.Fatalf("the slow subscriber's queue: %+v, want %+v", st, want)
	}
	s := summary(t, call(t, r.victim, "poll", handle))
	if len(s.Data) != bus.DefaultQueueMessages || s.Lagged != want.Lagged ||
		string(s.Data[0]) != fmt.Sprintf(`{"n":%d}`, (total-bus.DefaultQueueMessages)%perRound+1) || string(s.Data[len(s.Data)-1]) != fmt.Sprintf(`{"n":%d}`, perRound) {
		t.Fatalf("the slow subscriber read %d messages (%s … %s), lagged %d", len(s.Data), s.Data[0], s.Data[len(s.Data)-1], s.Lagged)
	}
	r.lagged = want.Lagged
}
