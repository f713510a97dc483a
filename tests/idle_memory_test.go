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

// idleTestChecks is how many health checks the idle-memory tests have a shim answer.
const idleTestChecks = 2000

// healthChecks has inst answer n health checks, as the host's monitor asks them (its 2 s
// deadline).
func healthChecks(t *testing.T, inst *host.Instance, n int) {
	t.Helper()
	for k := range n {
		ctx, cancel := context.WithTimeout(context.Background(), host.DefaultHealthTimeout)
		err := inst.Health(ctx)
		cancel()
		if err != nil {
			t.Fatalf("health check %d: %v", k, err)
		}
	}
}

// idleShim loads the hello example a second time, from the module cache, so that no
// compilation's garbage is in its shim, and returns it with its shim's pid.
func idleShim(t *testing.T, h *host.Host) (*host.Instance, int) {
	t.Helper()
	first, _ := loadCapsule(t, h, "hello")
	if err := h.Unload(context.Background(), first.ID()); err != nil {
		t.Fatal(err)
	}
	inst, _ := loadCapsule(t, h, "hello")
	return inst, inst.Pid()
}

// TestIdleShimAllocatesNothing: an idle shim answers the host's health checks (pings on the
// call connection) without allocating, so its memory stays flat: 2000 checks as gRPC calls left
// ~10 MB of garbage (its anonymous memory grew by ~4.5 MB, to the runtime's 4 MB heap goal; by
// ~1.3 MB when an idle check released it, the collector's own structures); as pings, by 4 KiB
// (measured, 80 KiB once). The bound, 256 KiB, is what 128 bytes a ping would leave. The shim still answers
// calls and checks after.
func TestIdleShimAllocatesNothing(t *testing.T) {
	checkLeaks(t)
	h := newHost(t, func(c *host.Config) { c.HealthInterval = time.Hour }) // the test checks itself
	inst, pid := idleShim(t, h)
	before := anonKiB(t, pid)
	healthChecks(t, inst, idleTestChecks)
	grown := anonKiB(t, pid) - before
	t.Logf("the shim's anonymous memory grew by %d KiB in %d idle health checks", grown, idleTestChecks)
	if grown > 256 {
		t.Errorf("the shim's anonymous memory grew by %d KiB in %d idle health checks (bound 256): answering them allocates", grown, idleTestChecks)
	}
	out, err := inst.Call(context.Background(), "greet", []byte("idle"), 0)
	if err != nil || string(out) != "Hello, idle!" {
		t.Fatalf("call after the checks: %q, %v", out, err)
	}
	if err := inst.Health(context.Background()); err != nil {
		t.Fatalf("health check after the call: %v", err)
	}
}

// TestShimReleasesCallGarbageWhenIdle: a shim whose calls left garbage (each call's input is
// decoded into a buffer of its own) hands it back to the system at the second health check
// after them, the first that finds it idle (shim/idlemem.go): its anonymous memory falls.
func TestShimReleasesCallGarbageWhenIdle(t *testing.T) {
	checkLeaks(t)
	h := newHost(t, func(c *host.Config) { c.HealthInterval = time.Hour }) // the test checks itself
	inst, pid := idleShim(t, h)
	input := bytes.Repeat([]byte("a"), 64<<10)
	for k := range 64 { // 4 MiB of inputs
		if _, err := inst.Call(context.Background(), "greet", input, 0); err != nil {
			t.Fatalf("call %d: %v", k, err)
		}
	}
	healthChecks(t, inst, 1) // not idle: calls finished since the previous check
	busy := anonKiB(t, pid)
	healthChecks(t, inst, 1) // idle: releases
	idle := anonKiB(t, pid)
	t.Logf("the shim's anonymous memory: %d KiB after the calls, %d KiB after the idle check", busy, idle)
	if idle > busy-1024 {
		t.Errorf("the shim's anonymous memory went from %d KiB after the calls to %d KiB after an idle check: want at least 1 MiB less", busy, idle)
	}
}
