package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/pb"
)

// The IPC contract between a shim and the host: whatever the shim's checks let through, the
// host's accept (so a correct shim is never judged compromised), and a request the shim refuses
// the host refuses too, with the same words (so a host refusal is evidence against the shim) —
// the publish quota aside, whose windows the two sides cannot share exactly.

// tb is what the contract helpers need of a *testing.T, *testing.F or *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// ipcRequest is one IPC call of a guest, as the shim receives it.
type ipcRequest struct {
	op      string // publish, subscribe, unsubscribe, poll or recv
	topic   string // the topic of a publish, the pattern of a subscribe
	payload []byte
	handle  uint64
	timeout uint64 // the guest's recv timeout, before the shim clamps it
}

// contractPair is one capsule instance's two sides: the guard its shim builds from the
// LoadRequest, and the host's IPC state of the instance, on a real bus.
type contractPair struct {
	shim *guard.Guard
	host *instanceIPC
	bus  *bus.Bus
}

// newContractPair sets up both sides of an instance of m, with the quota reading the time from
// now, as Host.load does: the host subscribes the interceptors and puts the instance's IPC
// settings in the LoadRequest; the shim builds its guard from the request.
func newContractPair(t tb, m *manifest.Manifest, now func() time.Time) *contractPair {
	t.Helper()
	b := bus.New(bus.Options{})
	h := newInstanceIPC(m)
	h.guard = guard.New(hostGuardConfig(m), now)
	interceptors, err := h.subscribeInterceptors(b, m.Interceptors, true)
	if err != nil {
		t.Fatal(err)
	}
	req := &pb.LoadRequest{
		CapsuleId:          m.ID(),
		IpcPublish:         m.Capabilities.IPCPublish,
		IpcSubscribe:       m.Capabilities.IPCSubscribe,
		IpcBytesPerSec:     m.Limits.IPCBytesPerSec,
		InterceptorHandles: interceptors,
	}
	cfg, err := guard.ConfigFromLoad(req)
	if err != nil {
		t.Fatal(err)
	}
	return &contractPair{shim: guard.New(cfg, now), host: h, bus: b}
}

// step makes request r as the shim does: the shim's checks first, then, if they pass, the
// host's, which must pass too. A request the shim refuses is sent to the host anyway (as a
// forging shim would), which must refuse it with the same text, unless the shim's refusal was
// the quota's.
func (p *contractPair) step(t tb, r ipcRequest) {
	t.Helper()
	var shimErr, hostErr error
	switch r.op {
	case "publish":
		shimErr = p.shim.CheckPublish(r.topic, r.payload)
		if errors.Is(shimErr, guard.ErrRateLimited) {
			return // state: the host's windows are not the shim's
		}
		var m bus.Message
		if m, hostErr = p.host.admit(r.topic, r.payload, p.host.guard.Now()); hostErr == nil {
			if !json.Valid(m.Payload) {
				t.Fatalf("publish %.40q: the host would put invalid JSON on the bus: %.80q", r.payload, m.Payload)
			}
			p.bus.Publish(m)
		}
	case "subscribe":
		shimErr = p.shim.CheckSubscribe(r.topic)
		var h uint64
		h, hostErr = p.host.subscribe(p.bus, r.topic)
		if shimErr == nil && hostErr == nil {
			if err := p.shim.AddSubscription(h); err != nil {
				t.Fatalf("the shim refuses handle %d the host gave for %q: %v", h, r.topic, err)
			}
		}
	case "unsubscribe":
		shimErr = p.shim.CheckUnsubscribe(r.handle)
		hostErr = p.host.unsubscribe(r.handle)
		if shimErr == nil {
			p.shim.Unsubscribed(r.handle)
		}
	case "poll":
		shimErr = p.shim.CheckHandle(r.handle)
		_, hostErr = p.host.get(r.handle)
	case "recv":
		shimErr = p.shim.CheckHandle(r.handle)
		if hostErr = p.host.guard.CheckRecv(r.handle, guard.ClampRecvTimeout(r.timeout)); hostErr == nil {
			_, hostErr = p.host.get(r.handle)
		}
	default:
		t.Fatalf("unknown op %q", r.op)
	}
	switch {
	case shimErr == nil && hostErr != nil:
		t.Fatalf("%s %.80q %.40q handle %d: the shim accepts it, the host refuses it: %v", r.op, r.topic, r.payload, r.handle, hostErr)
	case shimErr != nil && (hostErr == nil || hostErr.Error() != shimErr.Error()):
		t.Fatalf("%s %.80q %.40q handle %d: the shim says %q, the host %v", r.op, r.topic, r.payload, r.handle, shimErr, hostErr)
	}
}

// contractManifest is a capsule with the given ACLs, quota and interceptor events.
func contractManifest(t tb, publish, subscribe []string, bytesPerSec uint64, interceptors []string) *manifest.Manifest {
	t.Helper()
	var b strings.Builder
	b.WriteString("[package]\nname = \"contract\"\nversion = \"0.1.0\"\n\n[[component]]\nid = \"contract\"\nfile = \"contract.wasm\"\n\n")
	fmt.Fprintf(&b, "[capabilities]\nipc_publish = %s\nipc_subscribe = %s\n\n", tomlList(publish), tomlList(subscribe))
	fmt.Fprintf(&b, "[limits]\nipc_bytes_per_sec = %d\n", bytesPerSec)
	for i, ev := range interceptors {
		fmt.Fprintf(&b, "\n[[interceptor]]\nevent = %q\naction = \"on_%d\"\n", ev, i)
	}
	m, _, err := manifest.Parse("", []byte(b.String()))
	if err != nil {
		t.Fatalf("manifest:\n%s\n%v", b.String(), err)
	}
	return m
}

func tomlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// badPayloads are payloads that are not JSON as upstream reads it (serde_json), though
// encoding/json's grammar accepts most of them: issue 10's hole 8.
var badPayloads = [][]byte{
	[]byte("1e400"),
	[]byte("-1e400"),
	[]byte(`{"a":[1,2,1.5e309]}`),
	[]byte(strings.Repeat("[", 128) + strings.Repeat("]", 128)),
	[]byte(strings.Repeat(`{"a":`, 128) + "null" + strings.Repeat("}", 128)),
	[]byte(`"\ud800"`),
	[]byte(`"\udc00\ud800"`),
	[]byte(`["\ud800x"]`),
	[]byte("\"\xff\""),
	[]byte("{\"\xc3\x28\":1}"),
	[]byte("\"\xed\xa0\x80\""), // a surrogate encoded as UTF-8
	[]byte("{"),
	[]byte(""),
}

// goodPayloads are valid payloads at the edges of the rules.
var goodPayloads = [][]byte{
	[]byte("1.7976931348623157e308"),
	[]byte("123456789012345678901234567890"),
	[]byte("1e-400"),
	[]byte(strings.Repeat("[", 127) + strings.Repeat("]", 127)),
	[]byte(`"\ud83d\ude00"`),
	[]byte(`{"type":"user_input","text":"hi"}`),
	[]byte(`{"type":"custom","data":` + strings.Repeat("[", 126) + strings.Repeat("]", 126) + `}`),
	[]byte("\"\xe6\x97\xa5\""),
	[]byte(" null "),
}

var (
	segment    = rapid.SampledFrom([]string{"test", "v1", "x", "y", "*", "", "\xff", "日本"})
	aclPattern = rapid.SampledFrom([]string{"test.v1.*", "test.*.x", "*", "x", "x.y", "*.*", "test.v1.x", "y.*"})
)

// drawTopic draws a topic or pattern: mostly a few segments, sometimes too many or too long.
func drawTopic(t *rapid.T, label string) string {
	segs := make([]string, rapid.IntRange(0, 10).Draw(t, label+" depth"))
	for i := range segs {
		segs[i] = segment.Draw(t, label+" segment")
	}
	s := strings.Join(segs, ".")
	if rapid.IntRange(0, 9).Draw(t, label+" long") == 0 {
		s += "." + strings.Repeat("x", rapid.IntRange(240, 260).Draw(t, label+" length"))
	}
	return s
}

// drawPayload draws a payload: one of the edge cases, a string of some size (for the quota), or
// random bytes.
func drawPayload(t *rapid.T) []byte {
	switch rapid.IntRange(0, 3).Draw(t, "payload kind") {
	case 0:
		return rapid.SampledFrom(badPayloads).Draw(t, "bad payload")
	case 1:
		return rapid.SampledFrom(goodPayloads).Draw(t, "good payload")
	case 2:
		return []byte(`"` + strings.Repeat("x", rapid.IntRange(0, 3000).Draw(t, "size")) + `"`)
	}
	return rapid.SliceOfN(rapid.Byte(), 0, 12).Draw(t, "random payload")
}

// fakeClock is a clock the test moves forward.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestShimAcceptsHostAccepts: over random sequences of a guest's IPC calls, on random ACLs and
// quotas, everything the shim's checks let through the host's accept, and everything they refuse
// the host refuses alike.
func TestShimAcceptsHostAccepts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		publish := rapid.SliceOfNDistinct(aclPattern, 0, 3, rapid.ID).Draw(t, "ipc_publish")
		subscribe := rapid.SliceOfNDistinct(aclPattern, 0, 3, rapid.ID).Draw(t, "ipc_subscribe")
		interceptors := rapid.SliceOfN(aclPattern, 0, 3).Draw(t, "interceptors")
		quota := rapid.Uint64Range(1, 8<<10).Draw(t, "ipc_bytes_per_sec")
		clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
		p := newContractPair(t, contractManifest(t, publish, subscribe, quota, interceptors), clock.Now)
		defer p.host.close()
		for range rapid.IntRange(1, 200).Draw(t, "calls") {
			r := ipcRequest{op: rapid.SampledFrom([]string{"publish", "publish", "subscribe", "subscribe", "unsubscribe", "poll", "recv"}).Draw(t, "op")}
			switch r.op {
			case "publish":
				r.topic, r.payload = drawTopic(t, "topic"), drawPayload(t)
			case "subscribe":
				r.topic = drawTopic(t, "pattern")
			default:
				r.handle = rapid.Uint64Range(0, 12).Draw(t, "handle")
				r.timeout = rapid.SampledFrom([]uint64{0, 100, guard.MaxRecvTimeoutMs, guard.MaxRecvTimeoutMs + 1, 1 << 63}).Draw(t, "timeout")
			}
			p.step(t, r)
			clock.advance(time.Duration(rapid.IntRange(0, 400).Draw(t, "ms")) * time.Millisecond)
		}
	})
}

// TestSubscriptionLimitAgrees: the 128-subscription limit, interceptors included, is reached at
// the same call on both sides, and an unsubscribe frees a place on both.
func TestSubscriptionLimitAgrees(t *testing.T) {
	p := newContractPair(t, contractManifest(t, nil, []string{"test.v1.*"}, 1<<20, []string{"test.v1.a", "test.v1.b"}), nil)
	defer p.host.close()
	for range guard.MaxSubscriptions - 2 {
		p.step(t, ipcRequest{op: "subscribe", topic: "test.v1.x"})
	}
	if p.shim.CheckSubscribe("test.v1.x") != guard.ErrSubscriptionLimit {
		t.Fatalf("the shim allows a subscription past %d", guard.MaxSubscriptions)
	}
	p.step(t, ipcRequest{op: "subscribe", topic: "test.v1.x"}) // refused alike
	p.step(t, ipcRequest{op: "unsubscribe", handle: 1})        // an interceptor's: refused alike
	p.step(t, ipcRequest{op: "unsubscribe", handle: 7})
	p.step(t, ipcRequest{op: "subscribe", topic: "test.v1.x"})
	p.step(t, ipcRequest{op: "poll", handle: guard.MaxSubscriptions + 1})
}

// FuzzIPCContract feeds the same random requests to the shim's checks and the host's: a publish
// of payload to topic, a subscription to topic, and an unsubscribe, poll and recv of handle.
func FuzzIPCContract(f *testing.F) {
	for _, p := range append(append([][]byte{}, badPayloads...), goodPayloads...) {
		f.Add("test.v1.x", p, uint64(1), uint64(100))
	}
	f.Add("test.v1.\xff", []byte("1"), uint64(3), uint64(1<<63))
	f.Add("test..v1", []byte("[]"), uint64(0), uint64(0))
	f.Add("test.v1.*", []byte(`"a"`), uint64(2), uint64(60_001))
	f.Add("x.y.z.a.b.c.d.e.f", []byte("{}"), uint64(99), uint64(5))
	f.Add(strings.Repeat("x", 257), []byte("1"), uint64(1), uint64(1))
	m := contractManifest(f, []string{"test.v1.*", "*.y"}, []string{"test.v1.*", "x.*"}, 1<<20, []string{"test.v1.hook"})
	f.Fuzz(func(t *testing.T, topic string, payload []byte, handle, timeout uint64) {
		p := newContractPair(t, m, nil)
		defer p.host.close()
		for _, r := range []ipcRequest{
			{op: "publish", topic: topic, payload: payload},
			{op: "subscribe", topic: topic},
			{op: "poll", handle: handle},
			{op: "recv", handle: handle, timeout: timeout},
			{op: "unsubscribe", handle: handle},
			{op: "poll", handle: handle},
		} {
			p.step(t, r)
		}
	})
}
