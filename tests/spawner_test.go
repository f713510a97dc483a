package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
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

// TestShimStartedByHostReachesItsBroker: once the spawner has ended, shims start from the host
// (their parent is the host), and such a shim still reaches the host's services through
// go-plugin's broker, which under a runtime directory in /dev/shm listens in the shim's own
// socket directory (the sandbox's private /dev/shm hides the rest, TMPDIR included when run
// points it at the runtime directory): the procs capsule's spawn goes through it.
func TestShimStartedByHostReachesItsBroker(t *testing.T) {
	h := newHost(t)
	if !strings.HasPrefix(h.RuntimeDir(), "/dev/shm/") {
		t.Skipf("the runtime directory %s is not in /dev/shm: the broker listens in TMPDIR", h.RuntimeDir())
	}
	// As astrid-host run does: go-plugin's own runner would put the broker's socket there.
	t.Setenv("TMPDIR", h.RuntimeDir())
	first, _ := loadCapsule(t, h, "hello")
	spawner := parentPid(t, first.Pid())
	if spawner == os.Getpid() {
		t.Skip("no spawner here: the shims start from the host already")
	}
	if err := syscall.Kill(spawner, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the spawner to be gone", func() bool { return !processAlive(spawner) })
	inst, _ := loadCapsule(t, h, "procs")
	if ppid := parentPid(t, inst.Pid()); ppid != os.Getpid() {
		t.Fatalf("the shim's parent is %d, want the host (%d): the spawner has ended", ppid, os.Getpid())
	}
	var got spawnResult
	mustProc(t, inst, "spawn", sh("echo out"), &got)
	if got != (spawnResult{Stdout: "out\n"}) {
		t.Errorf("spawn through the host's services: %+v", got)
	}
}
