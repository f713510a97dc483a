package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestCgroupDir(t *testing.T) {
	for _, tt := range []struct {
		mount cgroupMount
		path  string
		want  string
	}{
		{cgroupMount{point: "/sys/fs/cgroup", root: "/"}, "/user.slice/astrid.service", "/sys/fs/cgroup/user.slice/astrid.service"},
		{cgroupMount{point: "/sys/fs/cgroup/pids", root: "/"}, "/", "/sys/fs/cgroup/pids"},
		// A container without a cgroup namespace mounts its own sub-tree.
		{cgroupMount{point: "/sys/fs/cgroup/memory", root: "/docker/abc"}, "/docker/abc", "/sys/fs/cgroup/memory"},
		{cgroupMount{point: "/sys/fs/cgroup/memory", root: "/docker/abc"}, "/docker/abc/sub", "/sys/fs/cgroup/memory/sub"},
		{cgroupMount{point: "/sys/fs/cgroup/memory", root: "/docker/abc"}, "/docker/abcd", "/sys/fs/cgroup/memory/docker/abcd"},
	} {
		if got := cgroupDir(tt.mount, tt.path); got != tt.want {
			t.Errorf("cgroupDir(%+v, %q) = %q, want %q", tt.mount, tt.path, got, tt.want)
		}
	}
	if got := unescapeMount(`/mnt/a\040b\\c`); got != `/mnt/a b\\c` {
		t.Errorf("unescapeMount = %q", got)
	}
}

// TestCgroupLimits: the per-process cgroup has the spec's limits, plus the helper's allowance in
// fork mode, and is gone after remove.
func TestCgroupLimits(t *testing.T) {
	if !support.Available(LayerCgroup) {
		t.Skipf("no cgroup layer: %s", support.Reason(LayerCgroup))
	}
	cg, err := support.cgroup.create(CgroupLimits{Pids: 8, MemoryBytes: 64 << 20}, helperPids)
	if err != nil {
		t.Fatal(err)
	}
	dirs := append([]string(nil), cg.dirs...)
	files := map[string]string{"pids.max": "24"}
	if cg.version == 2 {
		files["memory.max"] = "67108864"
	} else {
		files["memory.limit_in_bytes"] = "67108864"
	}
	for f, want := range files {
		found := false
		for _, d := range dirs {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				found = true
				if got := strings.TrimSpace(string(b)); got != want {
					t.Errorf("%s/%s = %s, want %s", d, f, got, want)
				}
			}
		}
		if !found {
			t.Errorf("no %s in %v", f, dirs)
		}
	}
	if err := cg.remove(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s is still there after remove", d)
		}
	}
}

// TestCgroupLeftover: a cgroup left behind by an earlier host with the same pid (one killed with
// SIGKILL, which could not remove its cgroups) does not stop this host from making its own: the
// empty leftover is replaced. One that still holds a process is not touched.
func TestCgroupLeftover(t *testing.T) {
	if !support.Available(LayerCgroup) {
		t.Skipf("no cgroup layer: %s", support.Reason(LayerCgroup))
	}
	next := fmt.Sprintf("astrid-%d-%d", os.Getpid(), cgroupSeq.Load()+1)
	stale := filepath.Join(support.cgroup.pids, next)
	// One left by an earlier process of this pid on this machine is the same case.
	if err := os.Mkdir(stale, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(stale) })
	cg, err := support.cgroup.create(CgroupLimits{Pids: 8}, 0)
	if err != nil {
		t.Fatalf("create with an empty leftover %s: %v", stale, err)
	}
	if cg.dirs[0] != stale {
		t.Fatalf("created %s, want the leftover's name %s", cg.dirs[0], stale)
	}
	if err := cg.remove(); err != nil {
		t.Fatal(err)
	}

	// A leftover still in use: its process stays, and create says why it failed.
	next = fmt.Sprintf("astrid-%d-%d", os.Getpid(), cgroupSeq.Load()+1)
	busy := filepath.Join(support.cgroup.pids, next)
	if err := os.Mkdir(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		_ = sleeper.Wait()
		_ = (&procCgroup{dirs: []string{busy}}).remove()
	})
	if err := os.WriteFile(filepath.Join(busy, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	if cg, err := support.cgroup.create(CgroupLimits{Pids: 8}, 0); err == nil {
		_ = cg.remove()
		t.Fatalf("create over a leftover in use succeeded")
	} else if !strings.Contains(err.Error(), "still in use") {
		t.Fatalf("create over a leftover in use: %v, want it to say the leftover is still in use", err)
	}
	if pids, _ := cgroupProcs(busy); len(pids) != 1 || pids[0] != sleeper.Process.Pid {
		t.Fatalf("the leftover's processes are %v, want [%d]", pids, sleeper.Process.Pid)
	}
}

// TestMemoryLimit: a process that allocates past its cgroup's memory limit is killed (SIGKILL
// from the kernel's out-of-memory killer), in fork mode (a spawned tree), through a warm helper,
// and in Exec mode (a shim); the same allocation under the limit completes.
func TestMemoryLimit(t *testing.T) {
	sb := requireSandbox(t)
	if !support.Available(LayerCgroup) {
		t.Skipf("no cgroup layer here, so no memory limit: %s", support.Reason(LayerCgroup))
	}
	pool := sb.NewPool(t.TempDir(), 0)
	defer pool.Close()
	for _, tt := range []struct {
		name   string
		exec   bool
		pooled bool
	}{
		{"fork mode", false, false},
		{"warm helper", false, true},
		{"exec mode", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				mib    string
				killed bool
			}{{"32", false}, {"256", true}} {
				spec := program("__alloc", c.mib)
				spec.Exec = tt.exec
				spec.Cgroup = CgroupLimits{Pids: 64, MemoryBytes: 128 << 20}
				var cmd *Cmd
				var err error
				if tt.pooled {
					cmd, err = pool.Command(spec)
				} else {
					cmd, err = sb.Command(spec)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(cmd.Layers, LayerCgroup) {
					t.Fatalf("layers %v have no cgroup", cmd.Layers)
				}
				r := runCmd(t, cmd)
				switch {
				case c.killed && r.exit.Signal != syscall.SIGKILL:
					t.Errorf("allocating %s MiB under a 128 MiB limit: %v, stdout %q; want killed by SIGKILL", c.mib, r.exit, r.stdout)
				case !c.killed && (r.exit != Exit{} || !strings.HasPrefix(r.stdout, "ok")):
					t.Errorf("allocating %s MiB under a 128 MiB limit: %v, stdout %q, stderr %q; want it done", c.mib, r.exit, r.stdout, r.stderr)
				}
			}
		})
	}
}
