package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/store"
)

// relayRig is a host running the relay test capsule (a run loop republishing relay.v1.in on
// relay.v1.out, tagged with its [env] mode) from a directory of the test's own, and the ipc test
// capsule subscribed to relay.v1.out: the subscriber on another capsule that sees what the relay
// relayed, through the real bus, shims and guests.
type relayRig struct {
	t      *testing.T
	h      *host.Host
	dir    string // the relay's capsule directory, which the test edits
	sub    *host.Instance
	handle uint64

	published int            // requests published so far, numbered 1..published
	got       map[int]string // request number -> mode of the instance that relayed it
	dups      int            // requests relayed more than once
	subLagged uint64         // what the subscriber's queue reported as lagged
}

func newRelayRig(t *testing.T, configure ...func(*host.Config)) *relayRig {
	t.Helper()
	return newRelayRigToml(t, "", configure...)
}

// newRelayRigToml is newRelayRig with extra appended to the relay's Capsule.toml.
func newRelayRigToml(t *testing.T, extra string, configure ...func(*host.Config)) *relayRig {
	t.Helper()
	r := &relayRig{t: t, h: newHost(t, configure...), dir: capsuleVariant(t, "relay", extra), got: map[int]string{}}
	relay, _ := loadCapsule(t, r.h, r.dir, host.LoadOptions{RunLoop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := relay.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	subDir := capsuleEdited(t, "ipc", "ipc", func(s string) string {
		return strings.Replace(s, `ipc_subscribe = ["test.v1.*"`, `ipc_subscribe = ["test.v1.*", "relay.v1.out"`, 1)
	})
	r.sub, _ = loadCapsule(t, r.h, subDir)
	out, err := r.sub.Call(context.Background(), "subscribe", []byte("relay.v1.out"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(out), &r.handle); err != nil {
		t.Fatalf("subscribe answered %q: %v", out, err)
	}
	return r
}

// relay is the capsule's current instance.
func (r *relayRig) relay() *host.Instance {
	inst := current(r.h, "relay")
	if inst == nil {
		r.t.Fatal("no relay instance is listed")
	}
	return inst
}

// relayLagged is what the relay's subscription to relay.v1.in (its first, and lowest handle)
// reports as lagged, and how many messages it matched (the subscription passes from instance
// to instance across reloads).
func (r *relayRig) relayLagged() (lagged, matched uint64) {
	stats := r.relay().SubscriptionStats()
	first := uint64(math.MaxUint64)
	for h := range stats {
		first = min(first, h)
	}
	return stats[first].Lagged, stats[first].Matched
}

// stopped reports whether c is closed.
func stopped(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// recvOnce receives one envelope at the subscriber (waiting up to 1 s) and records it; it
// reports how many messages (and lags) it saw.
func (r *relayRig) recvOnce() (uint64, error) {
	in := fmt.Sprintf(`{"handle":%d,"timeout_ms":1000}`, r.handle)
	out, err := r.sub.Call(context.Background(), "recv", []byte(in), 0)
	if err != nil {
		return 0, err
	}
	var s struct {
		Data   []json.RawMessage `json:"data"`
		Lagged uint64            `json:"lagged"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return 0, fmt.Errorf("recv answered %q: %v", out, err)
	}
	r.subLagged += s.Lagged
	for _, d := range s.Data {
		var m struct {
			Mode string `json:"mode"`
			Data struct {
				N int `json:"n"`
			} `json:"data"`
		}
		if err := json.Unmarshal(d, &m); err != nil {
			return 0, fmt.Errorf("relayed %s: %v", d, err)
		}
		if _, seen := r.got[m.Data.N]; seen {
			r.dups++
		}
		r.got[m.Data.N] = m.Mode
	}
	return uint64(len(s.Data)) + s.Lagged, nil
}

// drive publishes count more requests with at most window of them unaccounted for at a time (so
// that no queue has to lag), runs during on the side once a third of them are out and goes on
// publishing until it has returned, then receives until every request is accounted for:
// relayed, or counted as lagged by the relay's queue or the subscriber's. It fails the test on
// a duplicate or a loss.
func (r *relayRig) drive(count, window int, during func()) {
	t := r.t
	t.Helper()
	var mu sync.Mutex
	progress := make(chan struct{}, 1)
	accounted := uint64(len(r.got)) + r.subLagged
	base := r.published
	stopRecv := make(chan struct{})
	recvDone := make(chan error, 1)
	target := func() uint64 {
		lagged, _ := r.relayLagged()
		return uint64(r.published) - lagged
	}
	go func() {
		idle := 0 // recvs in a row that received nothing
		for {
			n, err := r.recvOnce()
			if err != nil {
				recvDone <- err
				return
			}
			mu.Lock()
			accounted += n
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
			select {
			case <-stopRecv:
				// Only now is r.published final: whether every request is accounted for is
				// decided against it, never against a count from before the publisher's last
				// requests (which it may send, and then stop, between this goroutine's
				// receive and this select).
				mu.Lock()
				done := accounted >= target()
				mu.Unlock()
				if done {
					recvDone <- nil
					return
				}
			default:
			}
			if n > 0 {
				idle = 0
			} else if stopped(stopRecv) {
				idle++ // while the publisher waits for during, nothing may come for a while
			}
			if idle == 10 {
				recvDone <- nil // nothing more for 10 s: what is missing is counted below
				return
			}
		}
	}()
	var duringDone chan struct{}
	deadline := time.After(2 * time.Minute)
	for k := 1; k <= count || (duringDone != nil && !stopped(duringDone)); k++ {
		if k == count/3 && during != nil {
			duringDone = make(chan struct{})
			go func() { defer close(duringDone); during() }()
		}
		for {
			mu.Lock()
			behind := uint64(base+k) - accounted
			mu.Unlock()
			if behind <= uint64(window) {
				break
			}
			select {
			case <-progress:
			case err := <-recvDone:
				t.Fatalf("after %d requests: %v", base+k, err)
			case <-deadline:
				t.Fatalf("after %d requests: the relay fell behind by %d for 2 min", base+k, behind)
			}
		}
		mu.Lock()
		r.published = base + k
		mu.Unlock()
		if err := r.h.Publish("relay.v1.in", fmt.Appendf(nil, `{"n":%d}`, base+k)); err != nil {
			t.Fatal(err)
		}
	}
	close(stopRecv)
	if err := <-recvDone; err != nil {
		t.Fatalf("%d published, %d relayed: %v", r.published, len(r.got), err)
	}
	relayLagged, matched := r.relayLagged()
	if matched != uint64(r.published) {
		t.Errorf("the relay's subscription matched %d requests; %d were published", matched, r.published)
	}
	if r.dups != 0 {
		t.Errorf("%d requests were relayed twice", r.dups)
	}
	if lost := uint64(r.published-len(r.got)) - relayLagged - r.subLagged; lost != 0 {
		t.Errorf("%d requests published, %d relayed, %d lagged at the relay, %d at the subscriber: %d lost",
			r.published, len(r.got), relayLagged, r.subLagged, lost)
	}
}

// modes counts the requests relayed by each mode (instance generation).
func (r *relayRig) modes() map[string]int {
	out := map[string]int{}
	for _, m := range r.got {
		out[m]++
	}
	return out
}

// setMode rewrites the relay's Capsule.toml with [env] mode's default set to mode, replacing the
// file by rename as editors do.
func (r *relayRig) setMode(mode string) {
	r.t.Helper()
	toml, err := os.ReadFile(filepath.Join(r.dir, "Capsule.toml"))
	if err != nil {
		r.t.Fatal(err)
	}
	edited := modeDefault.ReplaceAllLiteralString(string(toml), fmt.Sprintf("mode = { type = \"string\", default = %q }", mode))
	replaceFile(r.t, filepath.Join(r.dir, "Capsule.toml"), []byte(edited))
}

// modeDefault is the relay's [env] mode line.
var modeDefault = regexp.MustCompile(`mode = \{ type = "string", default = "[^"]*" \}`)

// setModule replaces the relay's module with the built one plus a custom section naming tag: the
// same code in a module of another hash, which the host compiles anew.
func (r *relayRig) setModule(tag string) {
	r.t.Helper()
	wasm, err := os.ReadFile(filepath.Join(capsules["relay"], "relay.wasm"))
	if err != nil {
		r.t.Fatal(err)
	}
	name := "reload"
	section := append([]byte{byte(len(name))}, name...)
	section = append(section, tag...)
	wasm = append(wasm, 0, byte(len(section))) // custom section id 0, its size (< 128)
	replaceFile(r.t, filepath.Join(r.dir, "relay.wasm"), append(wasm, section...))
}

// replaceFile writes data to a temporary file beside path and renames it over path.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoad: a run-loop capsule's module and manifest are replaced and the capsule
// reloaded while requests stream to it; the subscriber on another capsule gets every request
// relayed exactly once, by the old instance or the new, except what a queue reports as lagged,
// and the new instance serves from then on with the capsule's counters carried over.
func TestReloadUnderLoad(t *testing.T) {
	checkLeaks(t)
	r := newRelayRig(t)
	old := r.relay()
	reloaded := r.h.Bus().Subscribe(host.TopicCapsuleReloaded)
	defer reloaded.Close()
	var next *host.Instance
	var res host.LoadResult
	var reloadErr error
	r.drive(3000, 400, func() {
		r.setMode("v2")
		r.setModule("v2")
		next, res, reloadErr = r.h.Reload(context.Background(), "relay")
	})
	if reloadErr != nil {
		t.Fatal(reloadErr)
	}
	if !res.Compiled {
		t.Error("the changed module was not compiled")
	}
	if next == old || r.relay() != next {
		t.Fatalf("the listed instance is %p; old %p, new %p", r.relay(), old, next)
	}
	if st, _ := old.State(); st != host.StateStopped {
		t.Errorf("the replaced instance is %s, want stopped", st)
	}
	if s := next.Status(); s.Reloads != 1 || s.Restarts != 0 || s.State != "ready" {
		t.Errorf("the new instance's status: %+v", s)
	}
	modes := r.modes()
	if modes["relay"] == 0 || modes["v2"] == 0 {
		t.Errorf("relayed by mode: %v; want requests relayed by the old instance and by the new", modes)
	}
	// After the swap, only the new instance relays.
	before := modes["v2"]
	r.drive(300, 400, nil)
	if after := r.modes(); after["v2"] != before+300 || after["relay"] != modes["relay"] {
		t.Errorf("after the reload, relayed by mode: %v (before: %v)", after, modes)
	}
	env := reloaded.Poll(1 << 20)
	if len(env.Messages) != 1 || !strings.Contains(string(env.Messages[0].Payload), next.Status().Instance) {
		t.Errorf("reloaded events: %+v", env.Messages)
	}
	t.Logf("relayed by mode: %v; lagged: relay %d, subscriber %d", r.modes(), func() uint64 { l, _ := r.relayLagged(); return l }(), r.subLagged)
}

// TestReloadEndsParkedRecv: a run loop waiting in recv with nothing queued (a recv the host parks:
// no goroutine waits with it) when the next instance takes its subscription over returns from
// that recv at once, and the reload retires it as drained. Its recvs wait up to 10 minutes (mode
// "patient"), far longer than ReloadDrainTimeout: a recv the hand-over did not end would hold
// the replaced instance until the drain timed out, which the host logs as a warning.
func TestReloadEndsParkedRecv(t *testing.T) {
	checkLeaks(t)
	var logs lockedBuffer
	r := newRelayRig(t, func(c *host.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: io.MultiWriter(&logs, c.Logger.StandardWriter(&hclog.StandardLoggerOptions{})), Level: hclog.Debug})
	})
	r.setMode("patient")
	for i, mode := range []string{"patient", "relay"} { // the first reload makes the relay patient
		r.setMode(mode)
		old := r.relay()
		next, _, err := r.h.Reload(context.Background(), "relay")
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if st, _ := old.State(); st != host.StateStopped {
			t.Fatalf("reload %d: the replaced instance is %s, want stopped", i, st)
		}
		if next != r.relay() {
			t.Fatalf("reload %d: the new instance is not the listed one", i)
		}
	}
	if l := logs.String(); strings.Contains(l, "did not finish in time") {
		t.Fatalf("a replaced instance was stopped after the drain timed out:\n%s", l)
	}
	r.drive(50, 50, nil)
	if modes := r.modes(); modes["relay"] != 50 {
		t.Errorf("relayed by mode: %v; want 50 by the last instance", modes)
	}
}

// TestReloadBrokenReplacement: a replacement that cannot load, or that loads and fails before
// it takes over (after it took over the subscription, in two of the cases), leaves the old
// instance serving, with nothing lost of what was published meanwhile.
func TestReloadBrokenReplacement(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		name  string
		edit  func(r *relayRig)
		want  string
		ready time.Duration
	}{
		{"module that does not compile", func(r *relayRig) {
			replaceFile(r.t, filepath.Join(r.dir, "relay.wasm"), []byte("\x00asm\x01\x00\x00\x00\xff\xff"))
		}, "compile", 0},
		{"invalid manifest", func(r *relayRig) {
			replaceFile(r.t, filepath.Join(r.dir, "Capsule.toml"), []byte("[package]\nname = 5\n"))
		}, "invalid manifest", 0},
		{"renamed capsule", func(r *relayRig) {
			toml, _ := os.ReadFile(filepath.Join(r.dir, "Capsule.toml"))
			replaceFile(r.t, filepath.Join(r.dir, "Capsule.toml"), []byte(strings.Replace(string(toml), `name = "relay"`, `name = "other"`, 1)))
		}, `a reload keeps the name "relay"`, 0},
		{"crash after subscribing", func(r *relayRig) { r.setMode("crash") }, "the run loop failed", 0},
		{"never signals ready", func(r *relayRig) { r.setMode("no-ready") }, "did not signal ready", 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var configure []func(*host.Config)
			if tc.ready > 0 {
				configure = append(configure, func(c *host.Config) { c.ReadyTimeout = tc.ready })
			}
			r := newRelayRig(t, configure...)
			old := r.relay()
			var reloadErr error
			r.drive(600, 200, func() {
				tc.edit(r)
				_, _, reloadErr = r.h.Reload(context.Background(), "relay")
			})
			if reloadErr == nil || !strings.Contains(reloadErr.Error(), tc.want) || !strings.Contains(reloadErr.Error(), "goes on") {
				t.Fatalf("reload: %v; want an error saying %q and that the old instance goes on", reloadErr, tc.want)
			}
			if r.relay() != old {
				t.Fatal("the old instance is no longer listed")
			}
			if s := old.Status(); s.State != "ready" || s.Reloads != 0 {
				t.Fatalf("the old instance: %+v", s)
			}
			if modes := r.modes(); len(modes) != 1 || modes["relay"] != len(r.got) {
				t.Fatalf("relayed by mode: %v; want all by the old instance", modes)
			}
			r.drive(100, 200, nil) // and it goes on serving
		})
	}
}

// TestReloadCrashDuringSwap: the old instance crashes while its replacement is loading; the
// reload completes, and the crash's restart does not add a second instance.
func TestReloadCrashDuringSwap(t *testing.T) {
	checkLeaks(t)
	var logs lockedBuffer
	r := newRelayRigToml(t, "[restart]\nbackoff = \"10ms\"\n", func(c *host.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: io.MultiWriter(&logs, c.Logger.StandardWriter(&hclog.StandardLoggerOptions{})), Level: hclog.Debug})
	})
	old := r.relay()
	ready := r.h.Bus().Subscribe(host.TopicCapsulePrefix + "ready")
	defer ready.Close()
	restarted := r.h.Bus().Subscribe(host.TopicCapsuleRestarted)
	defer restarted.Close()
	r.setMode("gated")
	type result struct {
		inst *host.Instance
		err  error
	}
	// The bus's subscriptions now; the new instance adds one, its gate's (the subscription to
	// relay.v1.in it takes over, or makes afresh if the old one's is gone).
	base := r.h.Bus().Subscriptions()
	done := make(chan result, 1)
	go func() {
		inst, _, err := r.h.Reload(context.Background(), "relay")
		done <- result{inst, err}
	}()
	// The new instance is Ready (and has taken the subscription over) but waits for its gate.
	awaitRelayReady(t, ready)
	if err := killShim(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the old instance to be marked crashed", func() bool {
		st, _ := old.State()
		return st == host.StateFailed
	})
	// A gate published before the new instance subscribes to it reaches nobody: wait for the
	// subscription (Ready comes before the run loop gets there).
	waitFor(t, 20*time.Second, "the new instance to subscribe to its gate", func() bool { return r.h.Bus().Subscriptions() > base })
	if err := r.h.Publish("relay.v1.gate", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	r.drive(200, 100, nil)
	if modes := r.modes(); modes["gated"] != 200 {
		t.Errorf("relayed by mode: %v", modes)
	}
	// The crash's supervisor gives up rather than add a second instance of the capsule. Which
	// way depends on when it runs: the instance is marked failed (what the test waited for)
	// before the supervisor looks at it, so it either finds it still listed, schedules the
	// restart (10 ms after), waits for the reload and then finds it replaced; or it runs after
	// the swap and finds it no longer listed.
	waitFor(t, 30*time.Second, "the crash's supervisor to decide", func() bool {
		l := logs.String()
		return strings.Contains(l, "not restarted: the capsule was reloaded meanwhile") ||
			strings.Contains(l, "crashed while it was not the capsule's current one; not restarted") ||
			len(r.h.Instances()) > 2
	})
	r.h.Shutdown(context.Background())
	n := 0
	for _, inst := range r.h.Instances() {
		if inst.ID() == "relay" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d relay instances listed after the reload", n)
	}
	if env := restarted.Poll(1 << 20); len(env.Messages) != 0 {
		t.Errorf("the crashed instance was restarted after the reload replaced it: %+v", env.Messages)
	}
}

// TestReloadSerialised: reloads of one capsule run one after the other; each replaces the
// instance the one before left.
func TestReloadSerialised(t *testing.T) {
	checkLeaks(t)
	r := newRelayRig(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := r.h.Reload(context.Background(), "relay")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := r.relay().Status(); s.Reloads != 2 || s.State != "ready" {
		t.Fatalf("after two reloads: %+v", s)
	}
	r.drive(200, 100, nil)
	if _, _, err := r.h.Reload(context.Background(), "nosuch"); !errors.Is(err, host.ErrNotLoaded) || !strings.Contains(err.Error(), "loaded: relay, ipc") {
		t.Errorf("reload of an unknown capsule: %v", err)
	}
}

// TestReloadShutdown: Shutdown during a reload ends it (it fails) and stops both instances.
func TestReloadShutdown(t *testing.T) {
	checkLeaks(t)
	r := newRelayRig(t, func(c *host.Config) { c.ReadyTimeout = 10 * time.Minute })
	old := r.relay()
	ready := r.h.Bus().Subscribe(host.TopicCapsulePrefix + "ready")
	defer ready.Close()
	r.setMode("no-ready")
	done := make(chan error, 1)
	go func() {
		_, _, err := r.h.Reload(context.Background(), "relay")
		done <- err
	}()
	awaitRelayReady(t, ready)
	start := time.Now()
	r.h.Shutdown(context.Background())
	if err := <-done; err == nil {
		t.Fatal("the reload succeeded across Shutdown")
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("Shutdown took %s", took)
	}
	if processAlive(old.Pid()) {
		t.Errorf("the old instance's shim (pid %d) is still running", old.Pid())
	}
}

// killShim SIGKILLs the instance's shim.
func killShim(inst *host.Instance) error { return syscall.Kill(inst.Pid(), syscall.SIGKILL) }

// TestReloadWatch: a Watcher reloads the capsule when its Capsule.toml is replaced by a rename;
// a change that fails to load is reported and leaves the running instance serving.
func TestReloadWatch(t *testing.T) {
	checkLeaks(t)
	r := newRelayRig(t)
	type outcome struct {
		name string
		err  error
	}
	reloads := make(chan outcome, 8)
	w, err := r.h.Watch(host.WatchOptions{Reloaded: func(name string, err error) { reloads <- outcome{name, err} }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	old := r.relay()
	r.setMode("watched")
	if o := <-reloads; o.name != "relay" || o.err != nil {
		t.Fatalf("reload on change: %+v", o)
	}
	r.drive(100, 100, nil)
	if modes := r.modes(); modes["watched"] != 100 || r.relay() == old {
		t.Fatalf("after the change, relayed by mode: %v", modes)
	}
	serving := r.relay()
	replaceFile(t, filepath.Join(r.dir, "Capsule.toml"), []byte("[package]\nname = 5\n"))
	if o := <-reloads; o.err == nil || !strings.Contains(o.err.Error(), "invalid manifest") {
		t.Fatalf("reload of a broken change: %+v", o)
	}
	r.drive(100, 100, nil)
	if modes := r.modes(); modes["watched"] != 200 || r.relay() != serving {
		t.Fatalf("after a broken change, relayed by mode: %v", modes)
	}
}

// TestReloadCLI: `astrid-host reload NAME` against a running `astrid-host run --watch`, and
// --watch noticing a change, each announced on the bus; the errors for a capsule that is not
// loaded and for no running host.
func TestReloadCLI(t *testing.T) {
	state := t.TempDir()
	dir := capsuleVariant(t, "relay", "")
	run := startRun(t, "--state", state, "--watch", "--tail", host.TopicCapsuleReloaded, dir)
	if res := runCLI(t, state, "reload", "--state", state); res.code != 2 || !strings.Contains(res.stderr, "want the NAME of one capsule") {
		t.Fatalf("reload with no name: exit %d\n%s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "reload", "--state", state, "nosuch"); res.code != 1 || !strings.Contains(res.stderr, `capsule "nosuch": no such capsule is loaded (loaded: relay)`) {
		t.Fatalf("reload of an unknown capsule: exit %d\n%s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "reload", "--state", state, "relay"); res.code != 0 || !strings.HasPrefix(res.stdout, "relay: reloaded (instance ") || !strings.Contains(res.stdout, "reloads: 1)") {
		t.Fatalf("reload: exit %d\nstdout %s\nstderr %s", res.code, res.stdout, res.stderr)
	}
	run.awaitStdout(t, `"reloads":1`)
	toml, err := os.ReadFile(filepath.Join(dir, "Capsule.toml"))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, filepath.Join(dir, "Capsule.toml"), []byte(strings.Replace(string(toml), `default = "relay"`, `default = "v2"`, 1)))
	run.awaitStdout(t, `"reloads":2`)
	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t, runShutdownBound); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, state, "reload", "--state", state, "relay"); res.code != 1 || !strings.Contains(res.stderr, "no astrid-host run is running with state directory "+state) {
		t.Fatalf("reload with no host: exit %d\n%s", res.code, res.stderr)
	}
}

// awaitRelayReady waits for an astrid.v1.capsule.ready event of the relay on ready: its new
// instance, loading for a reload, is Ready (and has taken the subscription over).
func awaitRelayReady(t *testing.T, ready *bus.Subscription) {
	t.Helper()
	for {
		env, err := ready.Recv(context.Background(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range env.Messages {
			if strings.Contains(string(m.Payload), `"capsule_id":"relay"`) {
				return
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestReloadInstalled: an installed capsule's reload verifies its module against its meta.json
// read again: a module changed without its meta.json is refused as tampered with (the running
// instance goes on); with a meta.json that records it (as `astrid-host install` writes), the
// reload loads it.
func TestReloadInstalled(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	dir := capsuleVariant(t, "relay", "")
	wasmPath := filepath.Join(dir, "relay.wasm")
	writeMeta := func(wasm []byte) *store.Meta {
		t.Helper()
		meta := store.Meta{Version: "0.1.0", InstalledAt: store.Now(), UpdatedAt: store.Now(), WasmHash: store.Hash(wasm)}
		data, err := json.Marshal(meta)
		if err != nil {
			t.Fatal(err)
		}
		replaceFile(t, filepath.Join(dir, store.MetaName), data)
		return &meta
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := loadCapsule(t, h, dir, host.LoadOptions{RunLoop: true, Installed: writeMeta(wasm)})
	changed := append(append([]byte(nil), wasm...), 0, 3, 2, 'v', '2') // a custom section "v2", empty
	replaceFile(t, wasmPath, changed)
	if _, _, err := h.Reload(context.Background(), "relay"); !errors.Is(err, store.ErrHashMismatch) || !strings.Contains(err.Error(), "goes on") {
		t.Fatalf("reload of a module its meta.json does not record: %v", err)
	}
	if current(h, "relay") != old {
		t.Fatal("the refused reload replaced the running instance")
	}
	writeMeta(changed)
	next, _, err := h.Reload(context.Background(), "relay")
	if err != nil {
		t.Fatal(err)
	}
	if s := next.Status(); s.Reloads != 1 || s.State != "ready" || current(h, "relay") != next {
		t.Fatalf("after the reload: %+v", s)
	}
}
