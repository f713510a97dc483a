package tests

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// The fault-injection suite: each case starts a host with a victim capsule and a neighbour pair
// (pong as a run loop, ping calling it over the bus without pause), injects one fault into the
// victim, and checks that the host stays up, the neighbours keep exchanging messages with no gap
// longer than neighbourGapBound, the victim ends as its policy says, and nothing is left running.
// Each case logs its time to detect, time to restart and the neighbours' longest gap.

// neighbourGapBound is the longest pause the neighbours may see while the victim fails.
const neighbourGapBound = 2 * time.Second

// neighbours keeps ping and pong exchanging messages until stop, recording the longest gap
// between two successful round trips.
type neighbours struct {
	mu      sync.Mutex
	last    time.Time
	longest time.Duration
	rounds  int
	err     error
	stop    chan struct{}
	done    chan struct{}
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
	return n
}

// finish stops the exchange and checks it went on throughout.
func (n *neighbours) finish(t *testing.T) time.Duration {
	t.Helper()
	close(n.stop)
	<-n.done
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

func TestFaults(t *testing.T) {
	victimDir := capsuleVariant(t, "faulty", "\n[restart]\nbackoff = \"10ms\"\nmax_backoff = \"50ms\"\nmax_attempts = 3\n")
	kill := func(sig syscall.Signal) func(t *testing.T, v *host.Instance) {
		return func(t *testing.T, v *host.Instance) {
			if err := syscall.Kill(v.Pid(), sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	guestFault := func(export, input string) func(t *testing.T, v *host.Instance) {
		return func(t *testing.T, v *host.Instance) {
			if _, err := v.Call(context.Background(), export, []byte(input), 2*time.Second); err == nil {
				t.Fatalf("%s succeeded", export)
			}
		}
	}
	tests := []struct {
		name    string
		inject  func(t *testing.T, v *host.Instance)
		crashes bool   // the fault crashes the capsule (else it fails one call)
		reason  string // what the crash event says
		trap    string // the trap kind astrid.v1.capsule.trapped reports, for guest faults
	}{
		{name: "guest unreachable/panic", inject: guestFault("panic", ""), trap: "panic"},
		{name: "infinite loop (epoch)", inject: guestFault("spin", ""), trap: "timeout"},
		{name: "memory past the limit", inject: guestFault("hog", ""), trap: "out_of_memory"},
		{name: "stack overflow", inject: guestFault("recurse", ""), trap: "stack_overflow"},
		{name: "shim SIGKILLed", inject: kill(syscall.SIGKILL), crashes: true, reason: "killed by signal killed"},
		{name: "shim SIGKILLed mid-call", crashes: true, reason: "killed by signal killed", inject: func(t *testing.T, v *host.Instance) {
			go v.Call(context.Background(), "sleep", []byte("30000"), time.Minute)
			waitFor(t, 10*time.Second, "the call to run", func() bool { return storeBusy(v) })
			kill(syscall.SIGKILL)(t, v)
		}},
		{name: "shim SIGSTOPped (health check)", crashes: true, reason: "health check failed", inject: func(t *testing.T, v *host.Instance) {
			stopProcess(t, v.Pid())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			h := newHost(t, func(c *host.Config) {
				c.HealthInterval = 100 * time.Millisecond
				c.HealthTimeout = 300 * time.Millisecond
			})
			crashes := h.Bus().Subscribe(host.TopicCapsuleCrashed)
			defer crashes.Close()
			traps := h.Bus().Subscribe(host.TopicCapsuleTrapped)
			defer traps.Close()
			victim, _ := loadCapsule(t, h, victimDir)
			victimPid := victim.Pid()
			n := startNeighbours(t, h)

			t0 := time.Now()
			tc.inject(t, victim)
			var detect, restart time.Duration
			if tc.crashes {
				env, err := crashes.Recv(context.Background(), 1<<20)
				if err != nil || len(env.Messages) == 0 {
					t.Fatalf("no crash event: %v", err)
				}
				detect = time.Since(t0)
				if !strings.Contains(string(env.Messages[0].Payload), tc.reason) {
					t.Fatalf("crash event %s does not say %q", env.Messages[0].Payload, tc.reason)
				}
				waitFor(t, 20*time.Second, "the victim to be restarted", func() bool {
					next := current(h, "faulty")
					st, _ := next.State()
					return next != victim && st == host.StateReady
				})
				restart = time.Since(t0)
				if out, err := current(h, "faulty").Call(context.Background(), "echo", []byte("again"), 0); err != nil || string(out) != "again" {
					t.Fatalf("the restarted victim: %q, %v", out, err)
				}
			} else if st, reason := victim.State(); st != host.StateReady || victim.Pid() != victimPid {
				t.Fatalf("a guest fault took the capsule down: %s (%s)", st, reason)
			}
			if tc.trap != "" {
				env, err := traps.Recv(context.Background(), 1<<20)
				if err != nil || len(env.Messages) == 0 {
					t.Fatalf("no trap event: %v", err)
				}
				if p := string(env.Messages[0].Payload); !strings.Contains(p, `"trap_kind":"`+tc.trap+`"`) {
					t.Fatalf("trap event %s does not say trap_kind %q", p, tc.trap)
				}
			}
			gap := n.finish(t)
			t.Logf("fault %q: detected in %s, restarted in %s, neighbours' longest gap %s", tc.name, detect, restart, gap)

			var pids []int
			for _, inst := range h.Instances() {
				pids = append(pids, inst.Pid())
				for hd, st := range inst.SubscriptionStats() {
					if st.Lagged != 0 || st.Delivered+st.Queued != st.Matched {
						t.Errorf("%s handle %d lost messages: %+v", inst.ID(), hd, st)
					}
				}
			}
			h.Shutdown(context.Background())
			for _, pid := range append(pids, victimPid) {
				if pid > 0 && processAlive(pid) {
					t.Errorf("process %d survived the host's shutdown", pid)
				}
			}
		})
	}
}
