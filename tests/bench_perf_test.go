package tests

import (
	"fmt"
	"os"
	"testing"

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
