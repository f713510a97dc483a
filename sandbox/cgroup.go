package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The cgroup layer: each process that asks for limits gets its own cgroup under the host's, made
// by the host before the helper starts (the helper joins it first thing, so everything the
// program starts is counted) and removed once the tree has ended. The pids limit is what stops a
// fork bomb: RLIMIT_NPROC would count every process of the host's uid.

// cgroupRoot is where this host may create per-process cgroups.
type cgroupRoot struct {
	version int    // 1 or 2
	pids    string // the parent directory for pids cgroups (v2: the one parent)
	memory  string // the parent directory for memory cgroups (v2: the same as pids)
}

// helperPids is added to pids.max in fork mode for the helper's own threads: the pids controller
// counts tasks, and the helper (a Go program) stays in the cgroup as the tree's init.
const helperPids = 16

// cgroupSeq names the per-process cgroups of this host.
var cgroupSeq atomic.Uint64

// probeCgroup finds a cgroup hierarchy this process may create children in with the pids and
// memory controllers: a delegated cgroup v2 directory, or the v1 pids and memory hierarchies
// (writable in practice only by root).
func probeCgroup() (*cgroupRoot, string, string) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, "", fmt.Sprintf("cannot read the cgroup mounts: %v", err)
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, "", fmt.Sprintf("cannot read /proc/self/cgroup: %v", err)
	}
	var whyV2, whyV1 string
	if m, ok := mounts["2"]; ok {
		dir := cgroupDir(m, own["0"])
		if root, err := probeV2(dir); err == nil {
			return root, "v2 pids+memory at " + dir, ""
		} else {
			whyV2 = fmt.Sprintf("cgroup v2 at %s: %v", m.point, err)
		}
	} else {
		whyV2 = "no cgroup v2 mount"
	}
	pm, okP := mounts["pids"]
	mm, okM := mounts["memory"]
	switch {
	case !okP || !okM:
		whyV1 = "no v1 pids and memory hierarchies"
	default:
		root := &cgroupRoot{version: 1, pids: cgroupDir(pm, own["pids"]), memory: cgroupDir(mm, own["memory"])}
		errP, errM := tryMkdir(root.pids), tryMkdir(root.memory)
		if errP == nil && errM == nil {
			return root, "v1 pids+memory", ""
		}
		var errs []string
		for _, err := range []error{errP, errM} {
			if err != nil {
				errs = append(errs, err.Error())
			}
		}
		whyV1 = fmt.Sprintf("the v1 hierarchy is not writable (%s)", strings.Join(errs, "; "))
	}
	return nil, "", whyV2 + " and " + whyV1
}

// probeV2 checks that dir has the pids and memory controllers for its children (enabling them in
// cgroup.subtree_control when they are available but not enabled) and that children can be made.
func probeV2(dir string) (*cgroupRoot, error) {
	ctrl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	have := strings.Fields(string(ctrl))
	if !slices.Contains(have, "pids") || !slices.Contains(have, "memory") {
		return nil, fmt.Errorf("no pids or memory controller (controllers: %q)", strings.TrimSpace(string(ctrl)))
	}
	sub, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return nil, err
	}
	if f := strings.Fields(string(sub)); !slices.Contains(f, "pids") || !slices.Contains(f, "memory") {
		// The kernel refuses this while dir holds processes (the "no internal processes" rule),
		// which is the usual case for a host that was not given a delegated subtree.
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+pids +memory"), 0); err != nil {
			return nil, fmt.Errorf("pids and memory are not enabled for sub-cgroups of %s and enabling them failed: %w", dir, err)
		}
	}
	if err := tryMkdir(dir); err != nil {
		return nil, fmt.Errorf("not delegated: %w", err)
	}
	return &cgroupRoot{version: 2, pids: dir, memory: dir}, nil
}

// tryMkdir checks that a child cgroup can be made in dir.
func tryMkdir(dir string) error {
	p := filepath.Join(dir, fmt.Sprintf("astrid-probe-%d", os.Getpid()))
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	return os.Remove(p)
}

// cgroupMount is a mounted cgroup hierarchy.
type cgroupMount struct {
	point string // where it is mounted
	root  string // which directory of the hierarchy is mounted there
}

// cgroupMounts maps "2" to the cgroup2 mount and each v1 controller to its hierarchy's mount.
func cgroupMounts() (map[string]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]cgroupMount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root point options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		m := cgroupMount{point: unescapeMount(a[4]), root: unescapeMount(a[3])}
		switch b[0] {
		case "cgroup2":
			if _, dup := out["2"]; !dup {
				out["2"] = m
			}
		case "cgroup":
			for _, opt := range strings.Split(b[2], ",") {
				if _, dup := out[opt]; !dup && (opt == "pids" || opt == "memory") {
					out[opt] = m
				}
			}
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroups maps "0" to this process's cgroup v2 path and each v1 controller to its path there.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			out["0"] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// cgroupDir is the directory of cgroup path in mount m (whose root may be a sub-directory of the
// hierarchy, as in containers without a cgroup namespace).
func cgroupDir(m cgroupMount, path string) string {
	if m.root != "/" && (path == m.root || strings.HasPrefix(path, m.root+"/")) {
		path = strings.TrimPrefix(path, m.root)
	}
	return filepath.Join(m.point, path)
}

// procCgroup is the cgroup of one sandboxed process (one directory per v1 hierarchy).
type procCgroup struct {
	version int
	dirs    []string
}

// cgroupFile is one limit to write in a new cgroup; optional ones (swap limits, which only a
// kernel with swap accounting has) are skipped when the file is missing.
type cgroupFile struct {
	name, value string
	optional    bool
}

// create makes a cgroup for one process with limits lim; extraPids is added to the pids limit for
// the helper's own tasks. The memory limit counts swap too where the kernel accounts it (v2
// memory.swap.max 0; v1 memory.memsw.limit_in_bytes equal to the memory limit), so a tree cannot
// swap its way past it, and on v2 an out-of-memory kill ends the whole cgroup (memory.oom.group).
func (r *cgroupRoot) create(lim CgroupLimits, extraPids int) (*procCgroup, error) {
	name := fmt.Sprintf("astrid-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	cg := &procCgroup{version: r.version}
	mk := func(parent string, files []cgroupFile) error {
		dir := filepath.Join(parent, name)
		if err := mkdirCgroup(dir); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		cg.dirs = append(cg.dirs, dir)
		for _, f := range files { // in order: v1 takes memsw only once the memory limit is below it
			err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.value), 0)
			if err != nil && !(f.optional && errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("cgroup: %w", err)
			}
		}
		return nil
	}
	var pids, mem []cgroupFile
	if lim.Pids > 0 {
		pids = append(pids, cgroupFile{name: "pids.max", value: strconv.Itoa(lim.Pids + extraPids)})
	}
	if lim.MemoryBytes > 0 {
		bytes := strconv.FormatInt(lim.MemoryBytes, 10)
		if r.version == 2 {
			mem = []cgroupFile{{"memory.max", bytes, false}, {"memory.swap.max", "0", true}, {"memory.oom.group", "1", true}}
		} else {
			mem = []cgroupFile{{"memory.limit_in_bytes", bytes, false}, {"memory.memsw.limit_in_bytes", bytes, true}}
		}
	}
	var err error
	if r.version == 2 {
		err = mk(r.pids, append(pids, mem...))
	} else {
		// Always a pids cgroup, even without a pids limit: it is what the tree kill enumerates.
		err = mk(r.pids, pids)
		if err == nil && len(mem) > 0 {
			err = mk(r.memory, mem)
		}
	}
	if err != nil {
		_ = cg.remove()
		return nil, err
	}
	return cg, nil
}

// mkdirCgroup makes the cgroup directory dir. A directory of that name already there is the
// leftover of an earlier host that had this host's pid and was killed before it could remove its
// cgroups (SIGKILL): it is removed and made afresh when it is empty, which the kernel checks (rmdir
// of a cgroup with processes in it fails with EBUSY, and then so does this).
func mkdirCgroup(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	if rmErr := os.Remove(dir); rmErr != nil {
		return fmt.Errorf("%w (a cgroup left by an earlier process with this pid, still in use: %v)", err, rmErr)
	}
	return os.Mkdir(dir, 0o755)
}

// kill SIGKILLs every process in the cgroup, including ones that left the process group and the
// pid namespace's view (there is no way out of a cgroup for an unprivileged process).
func (c *procCgroup) kill() {
	if c == nil || len(c.dirs) == 0 {
		return
	}
	if c.version == 2 {
		if err := os.WriteFile(filepath.Join(c.dirs[0], "cgroup.kill"), []byte("1"), 0); err == nil {
			return
		}
	}
	// v1 (or v2 before Linux 5.14): kill what is listed until nothing is; a process forking in
	// between shows up in the next read, and the pids limit bounds how many there can be.
	for range 100 {
		pids, err := cgroupProcs(c.dirs[0])
		if err != nil || len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cgroupProcs lists the processes in a cgroup directory, as pids of the host's pid namespace.
func cgroupProcs(dir string) ([]int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// remove deletes the cgroup. Killed processes leave it asynchronously, so a busy cgroup is retried
// for a moment before giving up.
func (c *procCgroup) remove() error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, dir := range c.dirs {
		err := os.Remove(dir)
		for delay := time.Millisecond; errors.Is(err, syscall.EBUSY) && delay < 512*time.Millisecond; delay *= 2 {
			time.Sleep(delay)
			err = os.Remove(dir)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
		}
	}
	c.dirs = nil
	return errors.Join(errs...)
}
