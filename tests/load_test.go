package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
)

// hugeModule is a module that is small on disk but slow to compile: n functions, each declaring
// wasm's maximum of 50 000 locals, which the compiler must all initialise. 1 000 of them take
// about 3 s of CPU to compile; the 100 000 took more than 300 s.
func hugeModule(n int) []byte {
	uleb := func(b []byte, v uint64) []byte {
		for {
			c := byte(v & 0x7f)
			if v >>= 7; v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	section := func(id byte, body []byte) []byte { return append(uleb([]byte{id}, uint64(len(body))), body...) }
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = append(m, section(1, []byte{1, 0x60, 0, 0})...) // one type: () -> ()
	funcs := uleb(nil, uint64(n))
	for range n {
		funcs = append(funcs, 0)
	}
	m = append(m, section(3, funcs)...)
	body := append(uleb([]byte{1}, 50_000), 0x7f, 0x0b) // 50 000 i32 locals; end
	code := uleb(nil, uint64(n))
	for range n {
		code = append(uleb(code, uint64(len(body))), body...)
	}
	return append(m, section(10, code)...)
}

// binCapsule writes a capsule directory holding wasm as name.wasm, with extra in its Capsule.toml.
func binCapsule(t testing.TB, name string, wasm []byte, extra string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("[package]\nname = %q\nversion = \"0.1.0\"\n\n[[component]]\nfile = \"%s.wasm\"\n\n%s", name, name, extra)
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustManifest(t testing.TB, dir string) *manifest.Manifest {
	t.Helper()
	m, _, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCompileDeadline is hole 4: a module that would compile for minutes fails its load at its
// [limits] compile_timeout, its shim killed, and a neighbour listed after it loads and answers a
// call while it is still compiling.
func TestCompileDeadline(t *testing.T) {
	const deadline = 3 * time.Second
	wasm := hugeModule(20_000)
	huge := binCapsule(t, "huge", wasm, fmt.Sprintf("[limits]\ncompile_timeout = %q\n", deadline))
	neighbour := watCapsule(t, "neighbour", echoWAT, "")
	h := newHost(t)
	events := watchEvents(t, h)

	done := make(chan []host.LoadOutcome, 1)
	go func() {
		done <- h.LoadAll(context.Background(), []*manifest.Manifest{mustManifest(t, huge), mustManifest(t, neighbour)}, host.LoadOptions{})
	}()

	// The instances are listed in the order given, whichever loads first.
	events.wait(t, host.TopicCapsulePrefix+"ready", "neighbour", 1)
	insts := h.Instances()
	if len(insts) != 2 || insts[0].ID() != "huge" || insts[1].ID() != "neighbour" {
		t.Fatalf("instances %v, want huge then neighbour", insts)
	}
	out, err := insts[1].Call(context.Background(), "echo", []byte("still answering"), 0)
	if err != nil || string(out) != "still answering" {
		t.Fatalf("the neighbour's call: %q, %v", out, err)
	}
	if st, reason := insts[0].State(); st != host.StateLoading || len(events.all(host.TopicCapsulePrefix+"failed", "huge")) != 0 {
		t.Fatalf("the huge capsule was %s (%s) when its neighbour had answered; the neighbour should not have waited for it", st, reason)
	}
	// Its shim may still be starting on a loaded machine (the neighbour can be quicker); its pid
	// stays known after it is killed.
	waitFor(t, time.Minute, "the huge capsule's shim to start", func() bool { return insts[0].Pid() != 0 })
	pid := insts[0].Pid()

	// Then the huge capsule fails at its deadline, saying which capsule, which deadline, which key.
	failed := events.wait(t, host.TopicCapsulePrefix+"failed", "huge", 1)
	outcomes := <-done
	want := fmt.Sprintf("load capsule huge: compiling its module (%d bytes) did not finish within its deadline of 3s ([limits] compile_timeout); the shim compiling it was killed", len(wasm))
	if err := outcomes[0].Err; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("the huge capsule's load: %v\nwant %q", err, want)
	}
	if !strings.HasPrefix(failed[0].Reason, want) {
		t.Errorf("the failed event says %q, want %q", failed[0].Reason, want)
	}
	if took := outcomes[0].Result.Took; took < deadline {
		t.Errorf("the huge capsule failed after %s, before its deadline of %s", took, deadline)
	}
	if pid == 0 || processAlive(pid) {
		t.Errorf("the huge capsule's shim (pid %d) is still running", pid)
	}
	if len(events.all(host.TopicCapsuleCrashed, "huge")) != 0 {
		t.Errorf("the killed compile was reported as a crash: %+v", events.all(host.TopicCapsuleCrashed, "huge"))
	}
	if outcomes[1].Err != nil {
		t.Errorf("the neighbour's load: %v", outcomes[1].Err)
	}
	if out, err := insts[1].Call(context.Background(), "echo", []byte("after"), 0); err != nil || string(out) != "after" {
		t.Errorf("the neighbour after the huge capsule failed: %q, %v", out, err)
	}
}

// TestLoadAllOrder: LoadAll keeps the order of what it is given where order matters (the host's
// list, the loading events) and reports each capsule's outcome in place, a failure included.
func TestLoadAllOrder(t *testing.T) {
	names := []string{"c1", "c2", "c3", "c4", "c5", "c6"}
	var ms []*manifest.Manifest
	for _, n := range names {
		wat := echoWAT
		if n == "c3" {
			wat = missingImportWAT
		}
		ms = append(ms, mustManifest(t, watCapsule(t, n, wat, "")))
	}
	h := newHost(t)
	events := watchEvents(t, h)
	outcomes := h.LoadAll(context.Background(), ms, host.LoadOptions{})
	for k, o := range outcomes {
		if (o.Err != nil) != (names[k] == "c3") || o.Instance == nil || o.Instance.ID() != names[k] {
			t.Errorf("outcome %d: %v %v", k, o.Instance, o.Err)
		}
	}
	var loading, listed []string
	events.drain()
	for _, ev := range events.seen {
		if ev.topic == host.TopicCapsulePrefix+"loading" {
			loading = append(loading, ev.CapsuleID)
		}
	}
	for _, inst := range h.Instances() {
		listed = append(listed, inst.ID())
	}
	if got, want := strings.Join(listed, " "), strings.Join(names, " "); got != want {
		t.Errorf("instances %s, want %s", got, want)
	}
	if got, want := strings.Join(loading, " "), strings.Join(names, " "); got != want {
		t.Errorf("loading events %s, want %s", got, want)
	}
}
