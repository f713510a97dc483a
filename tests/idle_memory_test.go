package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// anonKiB is the anonymous memory of process pid in KiB: the shim's heap, stacks and malloc
// arenas, which its garbage grows.
func anonKiB(t *testing.T, pid int) int64 { return smapsRollupKiB(t, pid, "Anonymous") }

// smapsRollupKiB is the field (Pss, Anonymous, ...) of process pid's /proc/PID/smaps_rollup, in
// KiB. It skips the test where the file does not exist (before Linux 4.14).
func smapsRollupKiB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Skipf("needs /proc/PID/smaps_rollup (Linux 4.14): %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == field+":" {
			kib, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				tb.Fatalf("smaps_rollup of %d: %q", pid, sc.Text())
			}
			return kib
		}
	}
	tb.Fatalf("smaps_rollup of %d has no %s line", pid, field)
	return 0
}

// idleTestChecks is how many health checks TestIdleShimReleasesGarbage has an idle shim answer.
const idleTestChecks = 2000

// TestIdleShimReleasesGarbage: an idle shim hands the garbage of the health checks it answers
// back to the system (shim/idlemem.go), and still answers calls and checks after. 2000 checks
// leave ~10 MB of garbage; kept, the shim's anonymous memory grew by ~4.5 MB (to the runtime's
// 4 MB heap goal); released, by ~1.3 MB (the collector's own structures, which a first
// collection maps). The bound between the two is 3 MB. The capsule is loaded a second time, from
// the module cache, so that no compilation's garbage is counted.
func TestIdleShimReleasesGarbage(t *testing.T) {
	checkLeaks(t)
	h := newHost(t, func(c *host.Config) { c.HealthInterval = time.Hour }) // the test checks itself
	first, _ := loadCapsule(t, h, "hello")
	if err := h.Unload(context.Background(), first.ID()); err != nil {
		t.Fatal(err)
	}
	inst, _ := loadCapsule(t, h, "hello")
	pid := inst.Pid()
	before := anonKiB(t, pid)
	for k := range idleTestChecks {
		ctx, cancel := context.WithTimeout(context.Background(), host.DefaultHealthTimeout)
		err := inst.Health(ctx)
		cancel()
		if err != nil {
			t.Fatalf("health check %d: %v", k, err)
		}
	}
	grown := anonKiB(t, pid) - before
	t.Logf("the shim's anonymous memory grew by %d KiB in %d idle health checks", grown, idleTestChecks)
	if grown > 3072 {
		t.Errorf("the shim's anonymous memory grew by %d KiB in %d idle health checks (bound 3072): its garbage was kept", grown, idleTestChecks)
	}
	out, err := inst.Call(context.Background(), "greet", []byte("idle"), 0)
	if err != nil || string(out) != "Hello, idle!" {
		t.Fatalf("call after the checks: %q, %v", out, err)
	}
	if err := inst.Health(context.Background()); err != nil {
		t.Fatalf("health check after the call: %v", err)
	}
}
