package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
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

// TestShimSpawner: once the host's spawner runs, shims start from it (their parent is not the
// host), confined exactly as the shim the host started itself before the spawner was up; the
// capsule runs; Shutdown ends the spawner with the host's other processes.
func TestShimSpawner(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	first, _ := loadCapsule(t, h, "hello") // the host's own start; the spawner starts meanwhile
	if parentPid(t, first.Pid()) != os.Getpid() {
		t.Fatalf("the first shim's parent is %d, not the host", parentPid(t, first.Pid()))
	}
	want := confinement(t, first.Pid())
	wasm, err := os.ReadFile(filepath.Join(capsules["hello"], "hello.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string) *host.Instance {
		h.WaitSpares() // the spawner, and the spare this kind's last load asked for
		m := mustManifest(t, binCapsule(t, name, wasm, "[limits]\nmemory = \"64MiB\"\n"))
		inst, _, err := h.Load(ctx, m, host.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return inst
	}
	load("second") // takes the spare the first load left, whichever way it started
	third := load("third")
	spawner := parentPid(t, third.Pid())
	if spawner == os.Getpid() {
		t.Fatal("the third shim's parent is the host: it was not spawned")
	}
	if got := confinement(t, third.Pid()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spawned shim: %v, want (the host's own start) %v", got, want)
	}
	out, err := third.Call(ctx, "greet", []byte("spawner"), 10*time.Second)
	if err != nil || !strings.Contains(string(out), "spawner") {
		t.Errorf("greet: %q, %v", out, err)
	}
	h.Shutdown(ctx)
	waitFor(t, 10*time.Second, "the spawner to be gone", func() bool { return !processAlive(spawner) })
}
