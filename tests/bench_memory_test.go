package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// idleCapsules is how many capsules BenchmarkIdleMemory keeps idle.
const idleCapsules = 50

// pssKiB is the proportional set size of process pid in KiB: its private memory plus its share
// of each page it shares with other processes, so that the PSS of a group of processes adds up
// to the memory the group holds.
func pssKiB(b *testing.B, pid int) int64 { return smapsRollupKiB(b, pid, "Pss") }

// idleHealthChecks is how many health checks BenchmarkIdleMemory has each capsule answer before
// its after-idle reading: what a host's checks (one every 10 s) bring in 5.5 hours. An idle shim
// allocates only when it answers them (~5 KB of garbage each, measured), and its Go runtime
// collects only once that garbage reaches the heap goal: right after the boot no shim has
// collected yet, so the after-boot figure leaves out the heap an idle shim holds from then on.
const idleHealthChecks = 2000

// envIdleWait, a Go duration ("130s"), has BenchmarkIdleMemory also wait that long before its
// after-idle reading, for a look at real idle time (the runtime's forced collection every 2
// minutes, the host's own timers); unset, it does not wait.
const envIdleWait = "ASTRID_BENCH_IDLE_WAIT"

// BenchmarkIdleMemory: the marginal memory of an idle capsule among idleCapsules (50) copies
// of the hello example (a Go guest) booted sandboxed as `run` boots them, modules cached: the
// PSS of their shims plus what the host's own PSS grew by, divided by 50 (target ≤ 3 MB).
// The host collects its garbage before each of its readings. It is read twice: right after the
// boot (boot-marginal-pss-MB, boot-shim-pss-MB) and after idleHealthChecks health checks of
// every capsule (and the wait of ASTRID_BENCH_IDLE_WAIT if set): marginal-pss-MB and
// shim-pss-MB, the steady state of an idle capsule, are the figures that decide. shim-pss-MB is
// the shims' part alone. The spare shim the host keeps is not counted.
func BenchmarkIdleMemory(b *testing.B) {
	ctx := context.Background()
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(capsules["hello"], "hello.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	var caps []host.Capsule
	for k := range idleCapsules {
		caps = append(caps, host.Capsule{Manifest: mustManifest(b, binCapsule(b, fmt.Sprintf("idle%02d", k), wasm, "[limits]\nmemory = \"64MiB\"\n"))})
	}
	state := b.TempDir()
	newHost := func() *host.Host {
		h, err := host.New(host.Config{Shim: shim, StateDir: state, Workspace: b.TempDir(), Sandbox: testSandbox, Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	warm := newHost() // compiles the module once
	if rep := warm.Boot(ctx, caps[:1]); rep.Loaded() != 1 {
		b.Fatalf("warm-up: %+v", rep.Outcomes)
	}
	warm.Shutdown(ctx)
	var idleWait time.Duration
	if v := os.Getenv(envIdleWait); v != "" {
		if idleWait, err = time.ParseDuration(v); err != nil {
			b.Fatalf("%s=%q: %v", envIdleWait, v, err)
		}
	}
	var boot, bootShims, total, shims int64
	b.ResetTimer()
	for range b.N {
		h := newHost()
		// The host's garbage is collected before every reading: collected during the boot, it
		// would make the host's part look smaller than it is (negative, measured).
		debug.FreeOSMemory()
		before := pssKiB(b, os.Getpid())
		rep := h.Boot(ctx, caps)
		if rep.Loaded() != idleCapsules {
			b.Fatalf("booted %d of %d: %+v", rep.Loaded(), idleCapsules, rep.Outcomes)
		}
		h.WaitSpares()
		// read returns the PSS of the shims and the host's growth since before, in KiB.
		read := func() (shimKiB, totalKiB int64) {
			for _, o := range rep.Outcomes {
				shimKiB += pssKiB(b, o.Instance.Pid())
			}
			debug.FreeOSMemory()
			return shimKiB, shimKiB + pssKiB(b, os.Getpid()) - before
		}
		s, t := read()
		bootShims += s
		boot += t
		idleChecks(b, rep.Outcomes)
		if idleWait > 0 {
			time.Sleep(idleWait) // idle time itself is what is measured, nothing is awaited
		}
		s, t = read()
		shims += s
		total += t
		h.Shutdown(ctx)
	}
	b.StopTimer()
	mb := func(kib int64) float64 { return float64(kib) / 1024 / float64(b.N) / idleCapsules }
	b.ReportMetric(mb(boot), "boot-marginal-pss-MB")
	b.ReportMetric(mb(bootShims), "boot-shim-pss-MB")
	b.ReportMetric(mb(total), "marginal-pss-MB")
	b.ReportMetric(mb(shims), "shim-pss-MB")
}

// idleChecks has every booted capsule answer idleHealthChecks health checks, as the host's
// monitor asks them (Instance.Health, its 2 s deadline), two capsules at a time (one a core).
func idleChecks(b *testing.B, outcomes []host.LoadOutcome) {
	b.Helper()
	next := make(chan *host.Instance, len(outcomes))
	for _, o := range outcomes {
		next <- o.Instance
	}
	close(next)
	errs := make(chan error, 2)
	for range cap(errs) {
		go func() {
			errs <- func() error {
				for inst := range next {
					for range idleHealthChecks {
						ctx, cancel := context.WithTimeout(context.Background(), host.DefaultHealthTimeout)
						err := inst.Health(ctx)
						cancel()
						if err != nil {
							return fmt.Errorf("health check of %s: %w", inst.ID(), err)
						}
					}
				}
				return nil
			}()
		}()
	}
	var first error
	for range cap(errs) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		b.Fatal(first)
	}
}
