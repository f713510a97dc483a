package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCgroupLeftoverPid(t *testing.T) {
	for _, tt := range []struct {
		name string
		pid  int // 0: not a leftover's name
	}{
		{"astrid-123-4", 123},
		{"astrid-probe-77", 77},
		{"astrid-1-1", 1},
		{"other", 0},
		{"astrid-x-1", 0},
		{"astrid-12-x", 0},
		{"astrid-12-", 0},
		{"astrid--1", 0},
		{"astrid-0-1", 0},
		{"astrid-+5-1", 0},
		{"astrid--5-1", 0},
		{"astrid-12", 0},
		{"astrid-probe-", 0},
		{"astrid-probe-x", 0},
		{"astrid-99999999999-1", 0},
		{"astrid-run-abc", 0},
	} {
		pid, ok := leftoverPid(tt.name)
		if ok != (tt.pid != 0) || pid != tt.pid {
			t.Errorf("leftoverPid(%q) = %d, %v; want %d", tt.name, pid, ok, tt.pid)
		}
	}
}

// deadPid is the pid of a child that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	for range 10 {
		c := exec.Command("true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		if pid := c.Process.Pid; !processAlive(pid) {
			return pid
		}
		// Reused already by another process: take another.
	}
	t.Fatal("no dead pid found")
	return 0
}

// TestCgroupSweep: the sweep removes, in real cgroups, the leftovers of dead processes that have
// been unchanged for the grace (nested ones too), and keeps those of live processes, young ones,
// ones in use (counting them as failed, with no other effect) and names that are not its own.
func TestCgroupSweep(t *testing.T) {
	if !support.Available(LayerCgroup) {
		t.Skipf("no cgroup layer: %s", support.Reason(LayerCgroup))
	}
	dead, dead2 := deadPid(t), deadPid(t)
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = live.Process.Kill()
		_ = live.Wait()
	})
	old := time.Now().Add(-2 * staleCgroupAge)
	name := func(pid, n int) string { return fmt.Sprintf("astrid-%d-%d", pid, n) }
	cases := []struct {
		what   string
		dir    string // under the test's parent; a nested one after its parent
		young  bool   // its mtime left as made (now), not set back past the grace
		busy   bool   // the live process is moved into it
		remove bool
	}{
		{"a dead host's", name(dead, 1), false, false, true},
		{"another dead host's", name(dead2, 7), false, false, true},
		{"a dead probe's", "astrid-probe-" + strconv.Itoa(dead), false, false, true},
		{"this process's", name(os.Getpid(), 1), false, false, false},
		{"a live child's", name(live.Process.Pid, 1), false, false, false},
		{"a young one", name(dead, 2), true, false, false},
		{"one in use", name(dead, 3), false, true, false},
		{"not a leftover's name", "other", false, false, false},
		{"not a pid", "astrid-x-1", false, false, false},
		{"a dead host's holding another's", name(dead, 4), false, false, true},
		{"nested in a dead host's", name(dead, 4) + "/" + name(dead2, 1), false, false, true},
		{"a dead host's holding a young one", name(dead, 5), false, false, false},
		{"young, nested in a dead host's", name(dead, 5) + "/" + name(dead2, 2), true, false, false},
	}
	wantRemoved, wantFailed := 0, 0
	var parents []string
	for _, root := range []string{support.cgroup.pids, support.cgroup.memory} {
		if len(parents) > 0 && parents[0] == root {
			continue
		}
		// A parent of the test's own, so that other hosts' leftovers are not part of it.
		parent := filepath.Join(root, fmt.Sprintf("sweep-test-%d", os.Getpid()))
		if err := os.Mkdir(parent, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			dirs := []string{}
			for i := len(cases) - 1; i >= 0; i-- {
				dirs = append(dirs, filepath.Join(parent, cases[i].dir))
			}
			// remove retries a cgroup the killed child is still leaving.
			_ = (&procCgroup{dirs: dirs}).remove()
			if err := os.Remove(parent); err != nil {
				t.Errorf("remove the test's parent cgroup: %v", err)
			}
		})
		parents = append(parents, parent)
		wantFailed += 2 // the one in use, and the one holding a young one
		for _, c := range cases {
			if err := os.Mkdir(filepath.Join(parent, c.dir), 0o755); err != nil {
				t.Fatal(err)
			}
			if c.remove {
				wantRemoved++
			}
		}
		for _, c := range cases {
			if c.busy {
				procs := filepath.Join(parent, c.dir, "cgroup.procs")
				if err := os.WriteFile(procs, []byte(strconv.Itoa(live.Process.Pid)), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Last, and the nested ones first: making a child changes its parent's mtime.
		for i := len(cases) - 1; i >= 0; i-- {
			if !cases[i].young {
				if err := os.Chtimes(filepath.Join(parent, cases[i].dir), old, old); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Cleanups run last first: the child ends before its cgroup is removed.
	t.Cleanup(func() {
		_ = live.Process.Kill()
		_ = live.Wait()
	})

	got := sweepCgroups(parents, time.Now(), staleCgroupAge, time.Minute)
	if got.removed != wantRemoved || got.failed != wantFailed || got.partial {
		t.Errorf("sweep: %+v; want %d removed, %d failed, complete", got, wantRemoved, wantFailed)
	}
	if got.failed > 0 && !errors.Is(got.err, syscall.EBUSY) {
		t.Errorf("sweep's error %v, want EBUSY", got.err)
	}
	for _, parent := range parents {
		for _, c := range cases {
			_, err := os.Stat(filepath.Join(parent, c.dir))
			switch gone := errors.Is(err, fs.ErrNotExist); {
			case err != nil && !gone:
				t.Errorf("%s (%s): %v", c.what, c.dir, err)
			case gone != c.remove:
				t.Errorf("%s (%s in %s): removed %v, want %v", c.what, c.dir, parent, gone, c.remove)
			}
		}
	}
	if pids, _ := cgroupProcs(filepath.Join(parents[0], name(dead, 3))); len(pids) != 1 || pids[0] != live.Process.Pid {
		t.Errorf("the cgroup in use holds %v, want [%d]", pids, live.Process.Pid)
	}
	if !processAlive(live.Process.Pid) {
		t.Errorf("the live child is gone")
	}
}

// TestCgroupSweepBound: a sweep out of time stops and says so; the next one finishes the work.
func TestCgroupSweepBound(t *testing.T) {
	if !support.Available(LayerCgroup) {
		t.Skipf("no cgroup layer: %s", support.Reason(LayerCgroup))
	}
	parent := filepath.Join(support.cgroup.pids, fmt.Sprintf("sweep-bound-%d", os.Getpid()))
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(parent, fmt.Sprintf("astrid-%d-1", deadPid(t)))
	t.Cleanup(func() {
		_ = os.Remove(left)
		_ = os.Remove(parent)
	})
	if err := os.Mkdir(left, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleCgroupAge)
	if err := os.Chtimes(left, old, old); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		budget time.Duration
		want   cgroupSweep
	}{
		{0, cgroupSweep{partial: true}},
		{time.Minute, cgroupSweep{removed: 1}},
	} {
		if got := sweepCgroups([]string{parent}, time.Now(), staleCgroupAge, tt.budget); got != tt.want {
			t.Errorf("sweep within %v: %+v, want %+v", tt.budget, got, tt.want)
		}
	}
}

// TestCgroupSweepReport: what the probe's sweep did is in the doctor's report (the cgroup line)
// and the host's log line of the machine's layers (Summary), and only there.
func TestCgroupSweepReport(t *testing.T) {
	s := support.Without(LayerLandlock, "test")
	s.swept = cgroupSweep{removed: 12}
	const note = "removed 12 leftover cgroups of dead hosts"
	for _, line := range strings.Split(s.Report(), "\n") {
		if strings.HasPrefix(line, string(LayerCgroup)+" ") != strings.Contains(line, note) {
			t.Errorf("report line %q: the note is on the cgroup line only", line)
		}
	}
	if sum := s.Summary(); !strings.HasSuffix(sum, "; "+note) || strings.Count(sum, "=") != len(Layers()) {
		t.Errorf("Summary() = %q", sum)
	}
	if sum := s.Summary(LayerCgroup); strings.Contains(sum, note) {
		t.Errorf("Summary(cgroup), a process's, = %q", sum)
	}
	if got := (cgroupSweep{}).String(); got != "" {
		t.Errorf("an empty sweep says %q", got)
	}
	// The probe swept once, and later probes of the process do not again.
	if support.Available(LayerCgroup) {
		if !cgroupsSwept.Load() {
			t.Errorf("the probe found a cgroup root and did not sweep")
		}
		if got := support.cgroup.sweepOnce(); got != (cgroupSweep{}) {
			t.Errorf("a second sweep ran: %+v", got)
		}
	}
}

// BenchmarkCgroupSweep: one op is a sweep of 5000 empty leftovers of dead hosts in each of the
// cgroup root's parents (as a host SIGKILLed many times leaves them), against the baseline of
// rmdir alone on the same directories; and a sweep of 20000 young ones it only scans and keeps
// (a parent of tens of thousands of entries). Run with -benchtime=Nx: each op first makes its
// cgroups, untimed.
func BenchmarkCgroupSweep(b *testing.B) {
	if !support.Available(LayerCgroup) {
		b.Skipf("no cgroup layer: %s", support.Reason(LayerCgroup))
	}
	roots := []string{support.cgroup.pids}
	if support.cgroup.memory != support.cgroup.pids {
		roots = append(roots, support.cgroup.memory)
	}
	var parents []string
	for _, root := range roots {
		parent := filepath.Join(root, fmt.Sprintf("sweep-bench-%d", os.Getpid()))
		if err := os.Mkdir(parent, 0o755); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.Remove(parent) })
		parents = append(parents, parent)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		b.Fatal(err)
	}
	old := time.Now().Add(-2 * staleCgroupAge)
	// make makes n leftovers of the dead child in each parent, set back past the grace if aged.
	make := func(n int, aged bool) []string {
		b.StopTimer()
		defer b.StartTimer()
		var dirs []string
		for _, parent := range parents {
			for i := range n {
				dir := filepath.Join(parent, fmt.Sprintf("astrid-%d-%d", dead.Process.Pid, i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				if aged {
					if err := os.Chtimes(dir, old, old); err != nil {
						b.Fatal(err)
					}
				}
				dirs = append(dirs, dir)
			}
		}
		return dirs
	}
	const n, many = 5000, 20000
	b.Run("rmdir", func(b *testing.B) {
		for range b.N {
			for _, dir := range make(n, true) {
				if err := os.Remove(dir); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("sweep", func(b *testing.B) {
		for range b.N {
			make(n, true)
			if got := sweepCgroups(parents, time.Now(), staleCgroupAge, time.Minute); got.removed != n*len(parents) || got.failed != 0 {
				b.Fatalf("sweep: %+v", got)
			}
		}
	})
	b.Run("scan-young", func(b *testing.B) {
		for range b.N {
			dirs := make(many, false)
			if got := sweepCgroups(parents, time.Now(), staleCgroupAge, time.Minute); got != (cgroupSweep{}) {
				b.Fatalf("sweep: %+v", got)
			}
			b.StopTimer()
			for _, dir := range dirs {
				if err := os.Remove(dir); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
	})
}
