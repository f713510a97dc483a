package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/sandbox"
)

// parentPid is pid's parent, from /proc/PID/stat.
func parentPid(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // comm may hold spaces
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return ppid
}

// TestShimSpawner: a sandboxed host's shims start from its spawner (their parent is not the
// host), under the confinement TestSpareShims requires (sandbox's TestSpawnerConfinement shows
// it is exactly the host-started one's), and run; Shutdown ends the spawner.
func TestShimSpawner(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "hello")
	spawner := parentPid(t, inst.Pid())
	if spawner == os.Getpid() {
		t.Fatal("the shim's parent is the host: it was not spawned")
	}
	got := confinement(t, inst.Pid())
	if got["Seccomp"] != "2" || got["NoNewPrivs"] != "1" || got["CapEff"] != "0000000000000000" || got["CapBnd"] != "0000000000000000" {
		t.Errorf("spawned shim: %v", got)
	}
	for _, ns := range []string{"user", "pid", "net", "ipc", "uts", "mnt"} {
		if testSandbox.Policy() == sandbox.Required && got["own "+ns+" namespace"] != "true" {
			t.Errorf("the spawned shim shares the %s namespace: %v", ns, got)
		}
	}
	out, err := inst.Call(ctx, "greet", []byte("spawner"), 10*time.Second)
	if err != nil || !strings.Contains(string(out), "spawner") {
		t.Errorf("greet: %q, %v", out, err)
	}
	h.Shutdown(ctx)
	waitFor(t, 10*time.Second, "the spawner to be gone", func() bool { return !processAlive(spawner) })
}
