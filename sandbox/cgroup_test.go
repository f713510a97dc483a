package sandbox

import (
	"os"
	"path/filepath"
	"strings"
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
