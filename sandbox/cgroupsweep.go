package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The sweep of dead hosts' cgroups. A host removes each per-process cgroup when the tree ends
// (procCgroup.remove), but a host killed with SIGKILL leaves its cgroups behind, empty; thousands
// of dead memory cgroups cost the kernel memory and slow it. So the first Probe of a process that
// finds its cgroup root removes, under each parent it uses, the leftovers of hosts that are gone.
// It only ever rmdirs: the kernel refuses to remove a cgroup that still holds a process or a child
// cgroup, so nothing in use can be lost, and nothing is killed.

// staleCgroupAge is how long a cgroup must have gone unchanged before the sweep considers it: a
// host in another pid namespace that shares the hierarchy (whose pids mean nothing here) may have
// just made one, and its helper joins it milliseconds later. As host's staleRunDirAge.
const staleCgroupAge = time.Minute

// cgroupSweepBudget bounds the time one sweep may take, so that a parent of tens of thousands of
// entries does not hold a start for long: what is left is swept by the next process's start. An
// empty cgroup's rmdir takes ~20 µs (v1 pids) to ~60 µs (v1 memory) on a 2-core test machine, so
// 5000 leftovers in each hierarchy take about 0.4 s, inside it; a young one, only looked at, ~5 µs.
const cgroupSweepBudget = time.Second

// cgroupSweepBatch is how many names the sweep reads from a parent at a time.
const cgroupSweepBatch = 1024

// cgroupSweepDepth bounds how deep the sweep looks into a leftover that has child cgroups.
const cgroupSweepDepth = 2

// cgroupsSwept says whether this process has swept already: once per process.
var cgroupsSwept atomic.Bool

// cgroupSweep is what a sweep did, for Support's reports.
type cgroupSweep struct {
	removed int   // leftovers removed
	failed  int   // leftovers the kernel would not remove (in use) or that could not be read
	err     error // the first of those errors
	partial bool  // the sweep stopped at cgroupSweepBudget
}

// String is the sweep's account for reports, "" when it found nothing to do.
func (s cgroupSweep) String() string {
	var parts []string
	if s.removed > 0 {
		parts = append(parts, fmt.Sprintf("removed %d leftover cgroups of dead hosts", s.removed))
	}
	if s.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d leftover cgroups kept (%v)", s.failed, s.err))
	}
	if s.partial {
		parts = append(parts, fmt.Sprintf("the sweep stopped at its %v bound", cgroupSweepBudget))
	}
	return strings.Join(parts, "; ")
}

// sweepOnce sweeps root's parents the first time it is called in this process; later calls do
// nothing and return a zero cgroupSweep.
func (r *cgroupRoot) sweepOnce() cgroupSweep {
	if r == nil || !cgroupsSwept.CompareAndSwap(false, true) {
		return cgroupSweep{}
	}
	parents := []string{r.pids}
	if r.memory != r.pids {
		parents = append(parents, r.memory)
	}
	return sweepCgroups(parents, time.Now(), staleCgroupAge, cgroupSweepBudget)
}

// sweepCgroups removes the leftover cgroups of dead processes directly under each of parents (and
// in the leftovers themselves, cgroupSweepDepth deep, when they hold child cgroups): every
// directory leftoverPid accepts whose modification time is at least grace before now, within
// budget.
func sweepCgroups(parents []string, now time.Time, grace, budget time.Duration) cgroupSweep {
	sw := &sweeper{self: os.Getpid(), cutoff: now.Add(-grace), deadline: time.Now().Add(budget)}
	for _, p := range parents {
		sw.parent(p, cgroupSweepDepth)
	}
	return sw.cgroupSweep
}

// sweeper is one sweep's state.
type sweeper struct {
	cgroupSweep
	self     int
	cutoff   time.Time // leftovers changed after it are too young
	deadline time.Time
}

// parent sweeps the leftovers directly under dir, depth levels deep.
func (sw *sweeper) parent(dir string, depth int) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(cgroupSweepBatch)
		for _, name := range names {
			if time.Now().After(sw.deadline) {
				sw.partial = true
				return
			}
			pid, ok := leftoverPid(name)
			if !ok || pid == sw.self || processAlive(pid) {
				continue
			}
			sw.leftover(filepath.Join(dir, name), depth)
		}
		if err != nil { // io.EOF at the end, or a directory that cannot be read on
			if !errors.Is(err, io.EOF) {
				sw.fail(err)
			}
			return
		}
	}
}

// leftover removes the leftover cgroup dir if it is old enough; one the kernel refuses because it
// holds child cgroups (a host that ran inside a sandboxed tree of a host now gone) is swept in
// turn and tried again.
func (sw *sweeper) leftover(dir string, depth int) {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.ModTime().After(sw.cutoff) {
		return
	}
	err = os.Remove(dir)
	if errors.Is(err, syscall.EBUSY) && depth > 1 && hasChildDirs(dir) {
		sw.parent(dir, depth-1)
		err = os.Remove(dir)
	}
	switch {
	case err == nil:
		sw.removed++
	case errors.Is(err, os.ErrNotExist): // another host swept it first
	default:
		sw.fail(err)
	}
}

// fail counts a leftover that could not be removed, keeping the first error.
func (sw *sweeper) fail(err error) {
	sw.failed++
	if sw.err == nil {
		sw.err = fmt.Errorf("cgroup sweep: %w", err)
	}
}

// hasChildDirs says whether the cgroup dir has a child cgroup (a sub-directory).
func hasChildDirs(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.IsDir() })
}

// leftoverPid is the pid in the name of a cgroup this package makes: "astrid-PID-N" (create) or
// "astrid-probe-PID" (tryMkdir). Any other name is not the sweep's.
func leftoverPid(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "astrid-")
	if !ok {
		return 0, false
	}
	if p, ok := strings.CutPrefix(rest, "probe-"); ok {
		return parsePid(p)
	}
	p, seq, ok := strings.Cut(rest, "-")
	if !ok || !isDigits(seq) {
		return 0, false
	}
	return parsePid(p)
}

// parsePid parses a positive pid of decimal digits only (no sign: kill(0) or kill(-1) would mean
// a process group or every process).
func parsePid(s string) (int, bool) {
	if !isDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 {
		return 0, false
	}
	return int(n), true
}

// isDigits says whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// processAlive says whether pid may be a live process: only ESRCH from kill(pid, 0) says it is
// gone (EPERM is a live process of another user).
func processAlive(pid int) bool {
	return !errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}
