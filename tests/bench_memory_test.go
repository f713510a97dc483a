package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// idleCapsules is how many capsules BenchmarkIdleMemory keeps idle.
const idleCapsules = 50

// pssKiB is the proportional set size of process pid in KiB (/proc/PID/smaps_rollup): its
// private memory plus its share of each page it shares with other processes, so that the PSS
// of a group of processes adds up to the memory the group holds.
func pssKiB(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Skipf("PSS needs /proc/PID/smaps_rollup (Linux 4.14): %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "Pss:" {
			kib, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				b.Fatalf("smaps_rollup of %d: %q", pid, sc.Text())
			}
			return kib
		}
	}
	b.Fatalf("smaps_rollup of %d has no Pss line", pid)
	return 0
}

// BenchmarkIdleMemory: the marginal memory of an idle capsule among idleCapsules (50) copies
// of the hello example (a Go guest) booted sandboxed as `run` boots them, modules cached: the
// PSS of their shims plus what the host's own PSS grew by, divided by 50 (target ≤ 3 MB).
// The host collects its garbage before both of its readings. shim-pss-MB is the shims' part alone. The spare shim the host keeps is not counted.
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
	var total, shims int64
	b.ResetTimer()
	for range b.N {
		h := newHost()
		// The host's garbage is collected before both readings: collected during the boot, it
		// would make the host's part look smaller than it is (negative, measured).
		debug.FreeOSMemory()
		before := pssKiB(b, os.Getpid())
		rep := h.Boot(ctx, caps)
		if rep.Loaded() != idleCapsules {
			b.Fatalf("booted %d of %d: %+v", rep.Loaded(), idleCapsules, rep.Outcomes)
		}
		h.WaitSpares()
		var sum int64
		for _, o := range rep.Outcomes {
			sum += pssKiB(b, o.Instance.Pid())
		}
		debug.FreeOSMemory()
		total += sum + pssKiB(b, os.Getpid()) - before
		shims += sum
		h.Shutdown(ctx)
	}
	b.StopTimer()
	mb := func(kib int64) float64 { return float64(kib) / 1024 / float64(b.N) / idleCapsules }
	b.ReportMetric(mb(total), "marginal-pss-MB")
	b.ReportMetric(mb(shims), "shim-pss-MB")
}
