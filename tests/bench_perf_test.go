package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// perfMarksEnv names a file to which the bus benchmarks append the CLOCK_MONOTONIC times at
// which their measured part starts and ends, one "START,STOP" range a line: the time ranges
// `perf report --time` selects from a profile recorded with `perf record -k CLOCK_MONOTONIC` of
// the whole process tree (host, shims, guests), so that the profile covers what the benchmark
// times and not the build, compilation and loads before it.
//
//	ASTRID_BENCH_PERF_MARKS=/tmp/marks perf record -g -k CLOCK_MONOTONIC -- ./tests.test -test.bench BusThroughput
//	perf report --time "$(tr '\n' ' ' </tmp/marks)"
const perfMarksEnv = "ASTRID_BENCH_PERF_MARKS"

var perfStart string

// perfEnable marks the start of a measured part if perfMarksEnv is set (a no-op otherwise).
func perfEnable(b *testing.B) { perfStart = monotonic(b) }

// perfDisable marks its end.
func perfDisable(b *testing.B) {
	path := os.Getenv(perfMarksEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatalf("%s: %v", perfMarksEnv, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s,%s\n", perfStart, monotonic(b)); err != nil {
		b.Fatalf("%s: %v", perfMarksEnv, err)
	}
}

func monotonic(b *testing.B) string {
	if os.Getenv(perfMarksEnv) == "" {
		return ""
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

// threadStats are the counters of process pid's threads so far (threads that have exited no
// longer count): how often they stopped running, voluntarily (a thread that sleeps and is woken
// counts once) and not (preempted), from /proc/PID/task/*/status, and how long they ran, from
// /proc/PID/task/*/schedstat (ns: finer than /proc/PID/stat's 10 ms ticks, which a block of
// samples lasting tens of ms cannot use).
func threadStats(b *testing.B, pid int) (voluntary, involuntary int64, ran time.Duration) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatalf("context switches of %d: %v", pid, err)
	}
	for _, t := range tasks {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread has exited
		}
		for line := range strings.Lines(string(status)) {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			switch {
			case err != nil:
			case name == "voluntary_ctxt_switches":
				voluntary += n
			case name == "nonvoluntary_ctxt_switches":
				involuntary += n
			}
		}
		sched, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(sched)); len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				ran += time.Duration(ns)
			}
		}
	}
	return voluntary, involuntary, ran
}

// switchCounter adds up the context switches of a set of processes over measured parts.
type switchCounter struct {
	pids         []int
	vol, invol   []int64         // voluntary and involuntary switches over the parts, by process
	ran          []time.Duration // CPU time over the parts, by process
	vol0, invol0 []int64         // the same at the start of the part in progress
	ran0         []time.Duration
}

func newSwitchCounter(pids ...int) *switchCounter {
	n := len(pids)
	return &switchCounter{pids: pids, vol: make([]int64, n), invol: make([]int64, n), ran: make([]time.Duration, n),
		vol0: make([]int64, n), invol0: make([]int64, n), ran0: make([]time.Duration, n)}
}

// begin and end bracket one measured part.
func (s *switchCounter) begin(b *testing.B) {
	for i, pid := range s.pids {
		s.vol0[i], s.invol0[i], s.ran0[i] = threadStats(b, pid)
	}
}

func (s *switchCounter) end(b *testing.B) {
	for i, pid := range s.pids {
		v, iv, r := threadStats(b, pid)
		s.vol[i] += v - s.vol0[i]
		s.invol[i] += iv - s.invol0[i]
		s.ran[i] += r - s.ran0[i]
	}
}
