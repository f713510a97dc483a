package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host/control"
)

// TestRunDoubleSignal: a second SIGINT while `astrid-host run` unloads its capsules ends it at once
// (exit 1), and still removes its runtime directory (the shims' sockets) and its control socket;
// the shims die with it. Before, the forced exit left the runtime directory behind.
func TestRunDoubleSignal(t *testing.T) {
	tmp := t.TempDir() // the host's TMPDIR: its runtime directory is made here
	state := t.TempDir()
	run := startRunEnv(t, []string{"TMPDIR=" + tmp}, "--state", state, capsules["hello"])
	pid := run.pids["hello"]
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("no running shim reported (pid %d); log:\n%s", pid, run.logText())
	}
	if entries, _ := filepath.Glob(filepath.Join(tmp, "astrid-run-*")); len(entries) != 1 {
		t.Fatalf("runtime directories in TMPDIR: %v; want one", entries)
	}
	if _, err := os.Stat(control.SocketPath(state)); err != nil {
		t.Fatalf("no control socket while running: %v", err)
	}
	// A stopped shim cannot answer the shutdown request, so the orderly unload waits out the
	// shim's grace period: the second signal arrives while it does.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := run.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the host to start shutting down", func() bool { return strings.Contains(run.logText(), "shutting down") })
	start := time.Now()
	if err := run.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := run.wait(t, runShutdownBound)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("astrid-host run after a second SIGINT: %v, want exit status 1; log:\n%s", err, run.logText())
	}
	if !strings.Contains(run.logText(), "second signal: exiting at once") {
		t.Errorf("log lacks the forced exit:\n%s", run.logText())
	}
	t.Logf("exited %s after the second signal", time.Since(start))
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("TMPDIR after a forced exit holds %v; the runtime directory must be removed", names(entries))
	}
	if _, err := os.Stat(control.SocketPath(state)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after a forced exit: %v; want it removed", err)
	}
	waitFor(t, 10*time.Second, "the stopped shim to die with its host", func() bool { return !processAlive(pid) })
}

func names(entries []os.DirEntry) []string {
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}
