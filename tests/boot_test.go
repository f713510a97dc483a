package tests

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// bootCapsule is a capsule of a boot test: the tiny echo module (or another WAT) with a
// generated Capsule.toml carrying its [imports], [exports] and [capabilities].
type bootCapsule struct {
	name, wat, toml string
}

// bootCapsules writes the capsules and reads their manifests, in the order given (the order
// discovery would have found them in).
func bootCapsules(t *testing.T, cs []bootCapsule, opts host.LoadOptions) []host.Capsule {
	t.Helper()
	var caps []host.Capsule
	for _, c := range cs {
		wat := c.wat
		if wat == "" {
			wat = echoWAT
		}
		caps = append(caps, host.Capsule{Manifest: mustManifest(t, watCapsule(t, c.name, wat, c.toml)), Options: opts})
	}
	return caps
}

// eventIndex is the position in events.seen of the first event on topic for capsule id, -1 if
// there is none.
func eventIndex(events *hostEvents, topic, id string) int {
	return slices.IndexFunc(events.seen, func(e hostEvent) bool { return e.topic == topic && e.CapsuleID == id })
}

// TestBootDependencyOrder: a capsule that imports an interface starts (its loading event) only
// after every capsule exporting it has loaded (its ready or failed event), so the host lists each
// provider before its consumers and Shutdown stops consumers first; capsules that depend on
// nothing load at once; a provider that fails to load leaves its consumer to load anyway.
func TestBootDependencyOrder(t *testing.T) {
	cs := []bootCapsule{
		{name: "consumer", toml: "[imports.svc]\napi = \"^1.0\"\nlog = { version = \"2\", optional = true }\n"},
		{name: "api", toml: "[imports.svc]\nstore = \"1.0\"\n\n[exports.svc]\napi = \"1.2.0\"\n"},
		{name: "cache-user", toml: "[imports.svc]\ncache = \"*\"\n"},
		{name: "free"},
		{name: "broken", wat: missingImportWAT, toml: "[exports.svc]\ncache = \"1.0.0\"\n"},
		{name: "store", toml: "[exports.svc]\nstore = \"1.0.3\"\n"},
		{name: "logger", toml: "[exports.svc]\nlog = \"2.1.0\"\n"},
		{name: "old-api", toml: "[exports.svc]\napi = \"0.9.0\"\n"}, // does not satisfy ^1.0: no edge
		{name: "lonely", toml: "[imports.svc]\nnone = \"^1\"\ngone = { version = \"*\", optional = true }\n"},
	}
	edges := [][2]string{{"store", "api"}, {"api", "consumer"}, {"logger", "consumer"}, {"broken", "cache-user"}}
	caps := bootCapsules(t, cs, host.LoadOptions{})
	h, logs := hostWithLog(t, hclog.Info)
	events := watchEvents(t, h)

	rep := h.Boot(context.Background(), caps)
	if rep.Cycle != nil {
		t.Fatalf("cycle: %v", rep.Cycle)
	}
	for k, o := range rep.Outcomes {
		if wantErr := cs[k].name == "broken"; (o.Err != nil) != wantErr || o.Instance == nil {
			t.Errorf("%s: started %v, %v (want failure: %v)", cs[k].name, o.Instance != nil, o.Err, wantErr)
		}
	}
	events.wait(t, host.TopicCapsulesLoaded, "", 1)
	var listed []string
	for _, inst := range h.Instances() {
		listed = append(listed, inst.ID())
	}
	for _, e := range edges {
		t.Run(e[0]+" before "+e[1], func(t *testing.T) {
			done := eventIndex(events, host.TopicCapsulePrefix+"ready", e[0])
			if e[0] == "broken" {
				done = eventIndex(events, host.TopicCapsulePrefix+"failed", e[0])
			}
			loading := eventIndex(events, host.TopicCapsulePrefix+"loading", e[1])
			if done < 0 || loading < 0 || loading < done {
				t.Errorf("%s's loading event (#%d) comes before %s finished loading (#%d)", e[1], loading, e[0], done)
			}
			if slices.Index(listed, e[0]) > slices.Index(listed, e[1]) {
				t.Errorf("instances %v: %s listed after %s", listed, e[0], e[1])
			}
		})
	}
	// The capsules that depend on nothing start before any other has finished loading: they load
	// at the same time.
	firstDone := slices.IndexFunc(events.seen, func(e hostEvent) bool {
		return e.topic == host.TopicCapsulePrefix+"ready" || e.topic == host.TopicCapsulePrefix+"failed"
	})
	for _, name := range []string{"free", "broken", "store", "logger"} {
		if k := eventIndex(events, host.TopicCapsulePrefix+"loading", name); k > firstDone {
			t.Errorf("%s, which depends on nothing, started (#%d) after a load had ended (#%d)", name, k, firstDone)
		}
	}
	if got := eventIndex(events, host.TopicCapsulesLoaded, ""); got < eventIndex(events, host.TopicCapsulePrefix+"ready", "consumer") {
		t.Errorf("capsules_loaded (#%d) before the last capsule was ready", got)
	}

	// Upstream's boot checks, and the import a failed provider left unmet.
	for _, want := range []string{
		`[WARN]  test-host: several capsules export the same interface: both handle its events: interface=svc/api providers=["api", "old-api"]`,
		`[ERROR] test-host: required import not satisfied: the capsule loads without it: capsule=lonely import="svc/none ^1" why="no capsule exports this interface"`,
		`[INFO]  test-host: optional import not satisfied: the capsule boots with reduced functionality: capsule=lonely import="svc/gone *" why="no capsule exports this interface"`,
		`[INFO]  test-host: boot validation complete: capsules=9 imports_satisfied=4 warnings=2`,
		`[ERROR] test-host: required import not satisfied: the capsule loads without it: capsule=cache-user import="svc/cache *" why="every capsule that exports it failed to load" providers=["broken"]`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs.String())
		}
	}

	h.Shutdown(context.Background())
	events.drain()
	for _, e := range edges[:3] {
		if p, c := eventIndex(events, host.TopicCapsulePrefix+"stopped", e[0]), eventIndex(events, host.TopicCapsulePrefix+"stopped", e[1]); p < 0 || c < 0 || c > p {
			t.Errorf("shutdown stopped %s (#%d) before its consumer %s (#%d)", e[0], p, e[1], c)
		}
	}
}

// TestBootCycle: imports that form a cycle are an error naming every capsule in it, and the
// capsules then load in the order given, all of them.
func TestBootCycle(t *testing.T) {
	cs := []bootCapsule{
		{name: "c", toml: "[imports.ns]\nx = \"^1.0\"\n\n[exports.ns]\nz = \"1.0.0\"\n"},
		{name: "a", toml: "[imports.ns]\nz = \"^1.0\"\n\n[exports.ns]\ny = \"1.0.0\"\n"},
		{name: "b", toml: "[imports.ns]\ny = \"^1.0\"\n\n[exports.ns]\nx = \"1.0.0\"\n"},
		{name: "free"},
	}
	caps := bootCapsules(t, cs, host.LoadOptions{})
	h := newHost(t)
	rep := h.Boot(context.Background(), caps)
	if want := "dependency cycle detected (involved nodes): c, a, b"; rep.Cycle == nil || rep.Cycle.Error() != want {
		t.Fatalf("cycle %v, want %q", rep.Cycle, want)
	}
	if !slices.Equal(rep.Order, []int{0, 1, 2, 3}) {
		t.Errorf("order %v, want the order given", rep.Order)
	}
	var listed []string
	for _, inst := range h.Instances() {
		listed = append(listed, inst.ID())
	}
	// In the order given, a provider listed before its consumer still loads first (c before a,
	// a before b); the others start at once.
	if got := strings.Join(listed, " "); got != "c free a b" {
		t.Errorf("instances %s, want c free a b", got)
	}
	if rep.Loaded() != 4 {
		t.Errorf("%d capsules loaded, want 4: %+v", rep.Loaded(), rep.Outcomes)
	}
}

// spinNoReadyWAT is a run-loop capsule that never signals ready.
const spinNoReadyWAT = `(module (func (export "run") (result i32) (loop $spin (br $spin)) (i32.const 0)))`

// TestBootUplinksFirst: uplink capsules load first, and the others start only once each uplink
// is ready: at once when it signals ready, after Config.ReadyTimeout when it never does.
func TestBootUplinksFirst(t *testing.T) {
	pong, err := os.ReadFile(capsules["pong"] + "/pong.wasm")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		uplink  func(t *testing.T) string // the uplink capsule's directory
		timeout time.Duration
		signals bool
	}{
		{"uplink signals ready", func(t *testing.T) string {
			return binCapsule(t, "up", pong, "[capabilities]\nuplink = true\nipc_publish = [\"ping.v1.reply\"]\nipc_subscribe = [\"ping.v1.request\"]\n\n[exports.chat]\nbridge = \"1.0.0\"\n")
		}, 2 * time.Minute, true},
		{"uplink never signals ready", func(t *testing.T) string {
			return watCapsule(t, "up", spinNoReadyWAT, "[capabilities]\nuplink = true\n\n[exports.chat]\nbridge = \"1.0.0\"\n")
		}, time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			others := bootCapsules(t, []bootCapsule{{name: "a"}, {name: "b", toml: "[imports.chat]\nbridge = \"^1\"\n"}, {name: "c"}}, host.LoadOptions{RunLoop: true})
			caps := append(others[:2:2], host.Capsule{Manifest: mustManifest(t, tc.uplink(t)), Options: host.LoadOptions{RunLoop: true}}, others[2])
			h := newHost(t, func(c *host.Config) { c.ReadyTimeout = tc.timeout })
			events := watchEvents(t, h)
			start := time.Now()
			rep := h.Boot(context.Background(), caps)
			took := time.Since(start)
			if rep.Loaded() != 4 || !slices.Equal(rep.Order, []int{2, 0, 3, 1}) {
				t.Fatalf("loaded %d in order %v; want 4, the uplink first (then a, c, and b, which imports from it)", rep.Loaded(), rep.Order)
			}
			events.wait(t, host.TopicCapsulesLoaded, "", 1)
			upReady := eventIndex(events, host.TopicCapsulePrefix+"ready", "up")
			for _, name := range []string{"a", "b", "c"} {
				k := eventIndex(events, host.TopicCapsulePrefix+"loading", name)
				if k < upReady {
					t.Errorf("%s started (#%d) before the uplink was loaded (#%d)", name, k, upReady)
					continue
				}
				gap := events.seen[k].at.Sub(events.seen[upReady].at)
				if !tc.signals && gap < tc.timeout {
					t.Errorf("%s started %s after the uplink loaded; the uplink never signalled ready, so it should have waited %s", name, gap, tc.timeout)
				}
			}
			if tc.signals && took >= tc.timeout {
				t.Errorf("the boot took %s: it waited out the ready timeout though the uplink signalled ready", took)
			}
			if got := h.Instances()[0].ID(); got != "up" {
				t.Errorf("first instance %s, want the uplink", got)
			}
		})
	}
}

// TestBootCancel: SIGINT during a boot (its ctx ending) ends it promptly: no capsule starts
// afterwards, the loads and waits under way end, capsules_loaded is not published, and once the
// host shuts down nothing it started is left (no goroutine, no shim).
func TestBootCancel(t *testing.T) {
	checkLeaks(t)
	// A chain: each capsule imports the one before it, so they load one at a time, and the
	// first is a run-loop capsule that never signals ready: the boot waits on it.
	cs := []bootCapsule{{name: "c0", wat: spinNoReadyWAT, toml: "[exports.ns]\ni0 = \"1.0.0\"\n"}}
	for k := 1; k < 6; k++ {
		cs = append(cs, bootCapsule{name: fmt.Sprintf("c%d", k), toml: fmt.Sprintf("[imports.ns]\ni%d = \"^1\"\n\n[exports.ns]\ni%d = \"1.0.0\"\n", k-1, k)})
	}
	caps := bootCapsules(t, cs, host.LoadOptions{RunLoop: true})
	h := newHost(t, func(c *host.Config) { c.ReadyTimeout = 10 * time.Minute })
	events := watchEvents(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan host.BootReport, 1)
	go func() { done <- h.Boot(ctx, caps) }()
	events.wait(t, host.TopicCapsulePrefix+"ready", "c0", 1)
	cancel()
	var rep host.BootReport
	select {
	case rep = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the boot did not end within a minute of its ctx ending")
	}
	if o := rep.Outcomes[0]; o.Err != nil || o.Instance == nil {
		t.Errorf("c0: started %v, %v; want it loaded", o.Instance != nil, o.Err)
	}
	for k, o := range rep.Outcomes[1:] {
		if o.Instance != nil || o.Err == nil || !strings.Contains(o.Err.Error(), context.Canceled.Error()) {
			t.Errorf("c%d: started %v, %v; want it never started, with ctx's error", k+1, o.Instance != nil, o.Err)
		}
	}
	events.drain()
	if len(h.Instances()) != 1 || eventIndex(events, host.TopicCapsulesLoaded, "") >= 0 {
		t.Errorf("after the cancel: instances %d, capsules_loaded %d", len(h.Instances()), eventIndex(events, host.TopicCapsulesLoaded, ""))
	}
	pid := rep.Outcomes[0].Instance.Pid()
	h.Shutdown(context.Background())
	if processAlive(pid) {
		t.Errorf("c0's shim (pid %d) outlived the shutdown", pid)
	}
}
