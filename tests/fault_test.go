package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
)

// The fault-injection suite: each case starts a host with a neighbour pair (pong as a run loop,
// ping calling it over the bus without pause) and a victim capsule, injects one fault into the
// victim, and checks that the host stays up, the neighbours keep exchanging messages with no gap
// longer than neighbourGapBound and every ping answered, the victim ends as the case's outcome
// says (and its events say why), no subscription lags but those the case expects to, and nothing
// is left running after the host's shutdown. Each case logs its time to detect, time to restart
// and the neighbours' longest gap.
//
// The cases are in fault_shim_test.go (the shim dies, hangs or loses its connection; crash
// loops), fault_guest_test.go (guest traps, unloads of a blocked guest, big payloads),
// fault_ipc_test.go (publish floods, slow subscribers) and fault_host_test.go (the host process
// itself is terminated or killed; those cases run the astrid-host binary).

// neighbourGapBound is the longest pause the neighbours may see while the victim fails.
const neighbourGapBound = 2 * time.Second

// eventTimeout bounds every wait for a host event or a state the host must reach.
const eventTimeout = 20 * time.Second

// outcome is how a fault must leave the victim.
type outcome int

const (
	// survives: the victim is still Ready in the same shim, answers a health check, and no
	// crash was published; a guest fault cost one call at most.
	survives outcome = iota
	// restarts: astrid.v1.capsule.crashed says why, and the capsule is restarted once, Ready.
	restarts
	// unloaded: the victim was stopped deliberately: Stopped, no crash, no restart.
	unloaded
	// exhausted: the capsule crashed until its restart budget was spent: Failed, saying so, and
	// never restarted after that.
	exhausted
)

// faultCase is one fault of the suite.
type faultCase struct {
	name string
	// victim returns the victim's capsule directory and load options; nil means the faulty
	// capsule with a fast restart policy (fastRestartFaulty).
	victim func(t *testing.T) (string, host.LoadOptions)
	// inject injects the fault into r.victim and checks what is particular to it. It sets r.t0
	// to the moment of injection if that is not its start; it may set r.detect, r.lagged, and
	// r.restartBudget (exhausted).
	inject  func(t *testing.T, r *faultRun)
	outcome outcome
	// reason is what every crash event's reason says (restarts, exhausted), or the trap event's
	// message (a guest fault the victim survives).
	reason    string
	trap      string // the trap kind of astrid.v1.capsule.trapped (guest faults) or of the crash
	backtrace string // what the trap's guest backtrace shows, in the trap or crash event
	health    bool   // the health check detects it: astrid.v1.health.failed is published first
}

// fastRestartFaulty is the default victim's [restart]: quick, with a budget of 3.
const fastRestartFaulty = "\n[restart]\nbackoff = \"10ms\"\nmax_backoff = \"50ms\"\nmax_attempts = 3\n"

// faultRun is one case's host, victim and measurements.
type faultRun struct {
	h      *host.Host
	victim *host.Instance
	events *hostEvents
	n      *neighbours
	// t0 is when the fault was injected; detect and restart are measured from it.
	t0      time.Time
	detect  time.Duration
	restart time.Duration
	// lagged is how many messages the victim's subscriptions must have lagged, in total (the
	// slow subscriber); every other subscription must lag none.
	lagged uint64
	// restartBudget is the victim's max_attempts (exhausted).
	restartBudget int
	// pids are the shims that must be gone after the host's shutdown, beyond the live ones.
	pids []int
}

func TestFaults(t *testing.T) {
	// One module cache for every case: each case compiles nothing after the first.
	stateDir := t.TempDir()
	cases := slices.Concat(shimFaults(), guestFaults(), ipcFaults(), processFaults())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runFault(t, stateDir, tc) })
	}
	for _, tc := range hostProcessFaults() {
		t.Run(tc.name, func(t *testing.T) { runHostProcessFault(t, stateDir, tc) })
	}
}

func runFault(t *testing.T, stateDir string, tc faultCase) {
	checkLeaks(t)
	h := newHost(t, func(c *host.Config) {
		c.StateDir = stateDir
		c.HealthInterval = 100 * time.Millisecond
		// A case the health check detects gets a short timeout, so that it is detected quickly;
		// the others keep the default, so that a loaded machine (the race detector, 10 MiB
		// payloads on two cores) does not fail a neighbour's health check for them.
		if tc.health {
			c.HealthTimeout = time.Second
		}
	})
	events := watchEvents(t, h)
	n := startNeighbours(t, h)
	dir, opts := "", host.LoadOptions{}
	if tc.victim != nil {
		dir, opts = tc.victim(t)
	} else {
		dir = capsuleVariant(t, "faulty", fastRestartFaulty)
	}
	r := &faultRun{h: h, events: events, n: n, t0: time.Now()}
	r.victim, _ = loadCapsule(t, h, dir, opts)
	id, victimPid := r.victim.ID(), r.victim.Pid()
	r.pids = append(r.pids, victimPid)
	if tc.outcome != exhausted { // a crash loop starts at load: the load is the fault
		r.t0 = time.Now()
	}
	tc.inject(t, r)

	crashes := func() []hostEvent { return events.all(host.TopicCapsuleCrashed, id) }
	switch tc.outcome {
	case survives:
		if st, reason := r.victim.State(); st != host.StateReady || r.victim.Pid() != victimPid || current(h, id) != r.victim {
			t.Fatalf("the fault took the victim down: %s (%s), pid %d -> %d", st, reason, victimPid, r.victim.Pid())
		}
		if err := healthCheck(r.victim); err != nil {
			t.Fatalf("the victim's health check after the fault: %v", err)
		}
		if c := crashes(); len(c) != 0 {
			t.Fatalf("crash events for a fault the victim survives: %+v", c)
		}
	case restarts:
		ev := events.wait(t, host.TopicCapsuleCrashed, id, 1)[0]
		r.detect = ev.at.Sub(r.t0)
		tc.checkCrash(t, ev, r.victim)
		if tc.health {
			if hf := events.all(host.TopicHealthFailed, id); len(hf) != 1 || !strings.Contains(hf[0].Reason, tc.reason) {
				t.Fatalf("health.failed events: %+v", hf)
			}
		}
		waitFor(t, eventTimeout, "the victim to be restarted", func() bool {
			next := current(h, id)
			if next == nil {
				t.Fatalf("the host lost track of %s", id)
			}
			st, _ := next.State()
			return next != r.victim && st == host.StateReady
		})
		r.restart = time.Since(r.t0)
		waitFor(t, eventTimeout, "the crashed shim to be gone", func() bool { return !processAlive(victimPid) })
		next := current(h, id)
		r.pids = append(r.pids, next.Pid())
		if err := healthCheck(next); err != nil {
			t.Fatalf("the restarted victim's health check: %v", err)
		}
		if out, err := next.Call(context.Background(), "echo", []byte("again"), 0); err != nil || string(out) != "again" {
			t.Fatalf("the restarted victim: %q, %v", out, err)
		}
		if st, reason := r.victim.State(); st != host.StateFailed || !strings.Contains(reason, tc.reason) {
			t.Fatalf("the crashed instance: %s (%s)", st, reason)
		}
		re := events.all(host.TopicCapsuleRestarted, id)
		if len(re) != 1 || len(crashes()) != 1 {
			t.Fatalf("one crash must restart once: restarted %+v, crashed %+v", re, crashes())
		}
		if re[0].Attempt != 1 || re[0].Previous != ev.Instance || re[0].Instance != next.Status().Instance || re[0].Reason != ev.Reason {
			t.Fatalf("restarted event %+v: want attempt 1 of the crashed instance %s by %s, for %q", re[0], ev.Instance, next.Status().Instance, ev.Reason)
		}
	case unloaded:
		if st, reason := r.victim.State(); st != host.StateStopped {
			t.Fatalf("the unloaded victim is %s (%s)", st, reason)
		}
		if processAlive(victimPid) {
			t.Fatalf("the unloaded victim's shim %d is alive", victimPid)
		}
		// Its restart policy is quick; give it many backoffs' time, by the neighbours' clock.
		n.awaitRounds(t, 50)
		if c := crashes(); len(c) != 0 || current(h, id) != r.victim || len(events.all(host.TopicCapsuleRestarted, id)) != 0 {
			t.Fatalf("a deliberate unload crashed or restarted the victim: crashes %+v", c)
		}
	case exhausted:
		budget := r.restartBudget
		spent := fmt.Sprintf("restart budget of %d attempts is spent", budget)
		waitFor(t, eventTimeout, "the restart budget to be spent", func() bool {
			_, reason := current(h, id).State()
			return strings.Contains(reason, spent)
		})
		r.restart = time.Since(r.t0) // here: until the host gave up
		all := events.wait(t, host.TopicCapsuleCrashed, id, budget+1)
		r.detect = all[0].at.Sub(r.t0)
		instances := map[string]bool{}
		for _, ev := range all {
			tc.checkCrash(t, ev, nil)
			instances[ev.Instance] = true
		}
		if len(instances) != budget+1 {
			t.Fatalf("%d crash events came from %d instances, want one each", len(all), len(instances))
		}
		last := current(h, id)
		if st, _ := last.State(); st != host.StateFailed || last.Restarts() != budget {
			t.Fatalf("the last instance: %s after %d restarts, want failed after %d", st, last.Restarts(), budget)
		}
		n.awaitRounds(t, 50) // many backoffs' time, by the neighbours' clock
		if current(h, id) != last || len(crashes()) != budget+1 || len(events.all(host.TopicCapsuleRestarted, id)) != budget {
			t.Fatalf("the capsule went on after its budget: %d crashes, %d restarts", len(crashes()), len(events.all(host.TopicCapsuleRestarted, id)))
		}
		for _, inst := range h.Instances() {
			if inst.ID() == id {
				r.pids = append(r.pids, inst.Pid())
			}
		}
	}
	if tc.trap != "" && tc.outcome == survives {
		ev := events.wait(t, host.TopicCapsuleTrapped, id, 1)[0]
		r.detect = ev.at.Sub(r.t0)
		if ev.TrapKind != tc.trap || !strings.Contains(ev.Message, tc.reason) || !strings.Contains(ev.Backtrace, tc.backtrace) ||
			ev.Instance != r.victim.Status().Instance {
			t.Fatalf("trap event %+v: want trap kind %q, a message saying %q, a backtrace showing %q, from instance %s",
				ev, tc.trap, tc.reason, tc.backtrace, r.victim.Status().Instance)
		}
	}
	gap := n.finish(t)
	restarted := "restarted in " + orNone(r.restart)
	switch tc.outcome {
	case survives, unloaded:
		restarted = "not restarted"
	case exhausted:
		restarted = fmt.Sprintf("restarted %d times, given up after %s", r.restartBudget, orNone(r.restart))
	}
	t.Logf("fault %q: detected in %s, %s, neighbours' longest gap %s (%d round trips)",
		tc.name, orNone(r.detect), restarted, gap.Round(time.Microsecond), n.rounds)

	victim := current(h, id)
	var pids []int
	for _, inst := range h.Instances() {
		pids = append(pids, inst.Pid())
		var lagged uint64
		for hd, st := range inst.SubscriptionStats() {
			lagged += st.Lagged
			if st.Delivered+st.Lagged+st.Queued != st.Matched {
				t.Errorf("%s handle %d: delivered + lagged + queued != matched: %+v", inst.ID(), hd, st)
			}
		}
		want := uint64(0)
		if inst == victim {
			want = r.lagged
		}
		if lagged != want {
			t.Errorf("%s (pid %d): its subscriptions lagged %d messages, want %d", inst.ID(), inst.Pid(), lagged, want)
		}
	}
	if st := events.sub.Stats(); st.Lagged != 0 {
		t.Errorf("the test's own event subscription lagged: %+v", st)
	}
	h.Shutdown(context.Background())
	for _, pid := range append(pids, r.pids...) {
		if pid > 0 && processAlive(pid) {
			t.Errorf("process %d survived the host's shutdown", pid)
		}
	}
}

// checkCrash checks a crash event against the case, and that it names the crashed instance (if
// known).
func (tc faultCase) checkCrash(t *testing.T, ev hostEvent, crashed *host.Instance) {
	t.Helper()
	if !strings.Contains(ev.Reason, tc.reason) || ev.TrapKind != tc.trap || !strings.Contains(ev.Backtrace, tc.backtrace) ||
		(crashed != nil && ev.Instance != crashed.Status().Instance) {
		t.Fatalf("crash event %+v: want a reason saying %q, trap kind %q, a backtrace showing %q", ev, tc.reason, tc.trap, tc.backtrace)
	}
}

// healthCheck asks inst's shim whether it is alive and idle, within eventTimeout.
func healthCheck(inst *host.Instance) error {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	return inst.Health(ctx)
}

// orNone prints a duration that was not measured as "-".
func orNone(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

// neighbours keeps ping and pong exchanging messages until stop, recording the longest gap
// between two successful round trips.
type neighbours struct {
	mu       sync.Mutex
	last     time.Time
	longest  time.Duration
	rounds   int
	err      error
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func startNeighbours(t *testing.T, h *host.Host) *neighbours {
	t.Helper()
	pong, _ := loadCapsule(t, h, "pong", host.LoadOptions{RunLoop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pong.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	ping, _ := loadCapsule(t, h, "ping")
	n := &neighbours{last: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		for {
			select {
			case <-n.stop:
				return
			default:
			}
			out, err := ping.Call(context.Background(), "ping", []byte("1"), 0)
			now := time.Now()
			n.mu.Lock()
			if err != nil || string(out) != "pong 1\n" {
				if n.err == nil {
					n.err = errors.Join(err, errors.New("ping answered "+string(out)))
				}
			} else {
				n.longest = max(n.longest, now.Sub(n.last))
				n.last = now
				n.rounds++
			}
			n.mu.Unlock()
		}
	}()
	// A case that fails before finish still stops the exchange before the host shuts down.
	t.Cleanup(n.halt)
	return n
}

func (n *neighbours) halt() {
	n.stopOnce.Do(func() { close(n.stop) })
	<-n.done
}

// awaitRounds waits until the neighbours have completed k more round trips.
func (n *neighbours) awaitRounds(t *testing.T, k int) {
	t.Helper()
	n.mu.Lock()
	target := n.rounds + k
	n.mu.Unlock()
	waitFor(t, eventTimeout, fmt.Sprintf("%d more round trips of the neighbours", k), func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.rounds >= target || n.err != nil
	})
}

// finish stops the exchange and checks it went on throughout.
func (n *neighbours) finish(t *testing.T) time.Duration {
	t.Helper()
	n.halt()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		t.Fatalf("the neighbours failed: %v", n.err)
	}
	n.longest = max(n.longest, time.Since(n.last))
	if n.longest > neighbourGapBound {
		t.Fatalf("the neighbours paused for %s (bound %s)", n.longest, neighbourGapBound)
	}
	if n.rounds == 0 {
		t.Fatal("the neighbours exchanged nothing")
	}
	return n.longest
}

// hostEvents collects the host's events (astrid.v1.*) of one case, in order.
type hostEvents struct {
	sub  *bus.Subscription
	seen []hostEvent
}

// hostEvent is one host event: its topic, when it was published and its data.
type hostEvent struct {
	topic      string
	at         time.Time
	CapsuleID  string   `json:"capsule_id"`
	Instance   string   `json:"instance"`
	Reason     string   `json:"reason"`
	TrapKind   string   `json:"trap_kind"`
	StderrTail []string `json:"stderr_tail"`
	Backtrace  string   `json:"backtrace"`
	Message    string   `json:"message"`           // trapped
	Export     string   `json:"export"`            // trapped
	Attempt    int      `json:"attempt"`           // restarted
	Previous   string   `json:"previous_instance"` // restarted
}

func watchEvents(t *testing.T, h *host.Host) *hostEvents {
	e := &hostEvents{sub: h.Bus().Subscribe("astrid.v1.*")}
	t.Cleanup(e.sub.Close)
	return e
}

// add records the events of env; one whose data cannot be read is recorded with a reason that
// says so, which fails the assertions on it.
func (e *hostEvents) add(env bus.Envelope) {
	for _, m := range env.Messages {
		var p struct {
			Data hostEvent `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			p.Data.Reason = fmt.Sprintf("undecodable event %s: %v", m.Payload, err)
		}
		p.Data.topic, p.Data.at = m.Topic, m.Timestamp
		e.seen = append(e.seen, p.Data)
	}
}

// drain records the events published so far, so that a fault that makes many (a trap event per
// refused call) does not fill the subscription's queue.
func (e *hostEvents) drain() {
	for {
		env := e.sub.Poll(1 << 20)
		if len(env.Messages) == 0 {
			return
		}
		e.add(env)
	}
}

// all returns the events on topic about capsule id published so far.
func (e *hostEvents) all(topic, id string) []hostEvent {
	e.drain()
	var out []hostEvent
	for _, ev := range e.seen {
		if ev.topic == topic && ev.CapsuleID == id {
			out = append(out, ev)
		}
	}
	return out
}

// wait waits for count events on topic about capsule id and returns the first count.
func (e *hostEvents) wait(t *testing.T, topic, id string, count int) []hostEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	for {
		if got := e.all(topic, id); len(got) >= count {
			return got[:count]
		}
		env, err := e.sub.Recv(ctx, 1<<20)
		if err != nil {
			t.Fatalf("waiting for %d %s events of %s: %v; seen %+v", count, topic, id, err, e.seen)
		}
		e.add(env)
	}
}
