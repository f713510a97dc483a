package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunCLI: `astrid-host run` loads every capsule it is given (skipping one whose manifest is
// invalid), logs each one's state, and on SIGTERM unloads them all and exits 0 with no shim left.
// (TestFaults has the same with many capsules running; startRun is in fault_host_test.go.)
func TestRunCLI(t *testing.T) {
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "Capsule.toml"), []byte("[package]\nname = \"bad\"\nversion = \"1.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := startRun(t, "--state", t.TempDir(), capsules["hello"], bad, capsules["faulty"])
	if len(run.pids) != 2 || run.pids["hello"] == 0 || run.pids["faulty"] == 0 {
		t.Fatalf("want hello and faulty loaded, got %v; log:\n%s", run.pids, run.logText())
	}
	if !strings.Contains(run.logText(), "capsule skipped: invalid manifest") {
		t.Errorf("the invalid capsule was not reported as skipped; log:\n%s", run.logText())
	}
	for name, pid := range run.pids {
		if !processAlive(pid) {
			t.Fatalf("shim of %s (pid %d) is not running", name, pid)
		}
	}

	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t, runShutdownBound); err != nil {
		t.Fatalf("astrid-host run after SIGTERM: %v; log:\n%s", err, run.logText())
	}
	for _, want := range []string{"astrid-host.faulty: capsule state: state=stopped", "astrid-host.hello: capsule state: state=stopped", "astrid-host: stopped"} {
		if !strings.Contains(run.logText(), want) {
			t.Errorf("log lacks %q:\n%s", want, run.logText())
		}
	}
	for name, pid := range run.pids {
		if processAlive(pid) {
			t.Errorf("shim of %s (pid %d) survived the host", name, pid)
		}
	}
}

// TestHostKilledLeavesNoShim: a host that dies by SIGKILL runs no cleanup, yet its shims die with
// it (parent-death signal). (TestFaults has the same with many capsules running.)
func TestHostKilledLeavesNoShim(t *testing.T) {
	run := startRun(t, "--state", t.TempDir(), capsules["hello"])
	pid := run.pids["hello"]
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("no running shim reported (pid %d)", pid)
	}
	if err := run.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the shim to die with its host", func() bool { return !processAlive(pid) })
}

// TestRunTailAndPublish: `run --publish` reaches a run-loop capsule once it has signalled ready,
// and `--tail` prints the bus traffic, the host's own events included, as JSON lines.
func TestRunTailAndPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostBin, "run", "--state", t.TempDir(), "--tail", "ping.v1.*", "--tail", "astrid.v1.capsule.*",
		"--publish", `ping.v1.request={"n":42}`, capsules["pong"])
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		Topic   string `json:"topic"`
		Payload struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"payload"`
		Seq uint64 `json:"seq"`
	}
	var lines []line
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("tail printed a line that is not a message: %q", sc.Text())
		}
		lines = append(lines, l)
		if l.Topic == "ping.v1.reply" {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines = append(lines, l)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	// Each --tail is a subscription of its own: its lines keep the order of publication, while
	// the two patterns' lines may interleave either way.
	byPattern := map[string][]string{}
	var reply *line
	for i, l := range lines {
		p, _, _ := strings.Cut(l.Topic, ".v1.")
		byPattern[p] = append(byPattern[p], l.Topic)
		if l.Topic == "ping.v1.reply" {
			reply = &lines[i]
		}
	}
	want := map[string][]string{
		"astrid": {"astrid.v1.capsule.loading", "astrid.v1.capsule.ready", "astrid.v1.capsule.stopped"},
		"ping":   {"ping.v1.request", "ping.v1.reply"},
	}
	for p, w := range want {
		if got := byPattern[p]; strings.Join(got, " ") != strings.Join(w, " ") {
			t.Fatalf("tail printed %v of pattern %s, want %v\nall lines: %v\nstderr:\n%s", got, p, w, lines, stderr.String())
		}
	}
	if len(lines) != 5 {
		t.Fatalf("tail printed %d lines, want 5: %v", len(lines), lines)
	}
	if string(reply.Payload.Data) != `{"n":42}` || reply.Payload.Type != "custom" {
		t.Fatalf("the reply: %+v", *reply)
	}
}

// TestRunStatus: while `run` runs, `astrid-host status` shows each capsule's version, state,
// restarts, pid, source and last failure (live, from the control socket), and follows a crash and its restart; once the host is gone, status says so.
func TestRunStatus(t *testing.T) {
	state := t.TempDir()
	faulty := capsuleVariant(t, "faulty", "\n[restart]\nbackoff = \"10ms\"\n")
	run := startRun(t, "--state", state, capsules["hello"], faulty)
	status := func() map[string][]string {
		res := runCLI(t, state, "status", "--state", state)
		if res.code != 0 {
			t.Fatalf("status: exit %d\n%s", res.code, res.stderr)
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n")[1:] {
			f := strings.Fields(line)
			rows[f[0]] = f[1:]
		}
		return rows
	}
	rows := status()
	if rows["hello"][1] != "ready" || rows["faulty"][1] != "ready" || rows["faulty"][2] != "0" {
		t.Fatalf("status at start: %v", rows)
	}
	pid, _ := strconv.Atoi(rows["faulty"][3])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "status to show the restart", func() bool {
		r := status()["faulty"]
		return r[1] == "ready" && r[2] == "1" && strings.Join(r[5:], " ") == fmt.Sprintf("the shim (pid %d) was killed by signal killed", pid)
	})
	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t, runShutdownBound); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, state, "status", "--state", state); res.code != 1 || !strings.Contains(res.stderr, "no astrid-host run is running") {
		t.Fatalf("status after the host stopped: exit %d\n%s", res.code, res.stderr)
	}
}

// TestKilledHostRunDirSwept: a host killed by SIGKILL cannot remove its runtime directory (the
// shims' sockets); the next host to start in the same temporary directory removes it once it has
// gone unchanged for a minute (its mtime is set back here), and leaves a running host's alone.
func TestKilledHostRunDirSwept(t *testing.T) {
	tmp := t.TempDir() // both hosts' TMPDIR: their runtime directories are made here
	runDirs := func() []string {
		t.Helper()
		dirs, err := filepath.Glob(filepath.Join(tmp, "astrid-run-*"))
		if err != nil {
			t.Fatal(err)
		}
		return dirs
	}
	killed := startRunEnv(t, []string{"TMPDIR=" + tmp}, "--state", t.TempDir(), capsules["hello"])
	dead := runDirs()
	if len(dead) != 1 {
		t.Fatalf("runtime directories of the first host: %v; want one", dead)
	}
	if err := killed.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed.wait(t, runShutdownBound)
	live := startRunEnv(t, []string{"TMPDIR=" + tmp}, "--state", t.TempDir(), capsules["hello"])
	var running string
	for _, d := range runDirs() {
		if d != dead[0] {
			running = d
		}
	}
	if running == "" {
		t.Fatalf("no runtime directory for the running host: %v", runDirs())
	}
	past := time.Now().Add(-2 * time.Minute)
	for _, d := range []string{dead[0], running} {
		if err := os.Chtimes(d, past, past); err != nil {
			t.Fatal(err)
		}
	}
	call := exec.Command(hostBin, "call", capsules["hello"], "greet", "--input", "sweep", "--state", t.TempDir())
	call.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := call.CombinedOutput(); err != nil {
		t.Fatalf("call: %v\n%s", err, out)
	}
	if _, err := os.Stat(dead[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed host's runtime directory after another host started: %v; want it removed", err)
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("the running host's runtime directory: %v; want it kept", err)
	}
	if pid := live.pids["hello"]; pid == 0 || !processAlive(pid) {
		t.Errorf("the running host's shim (pid %d) is gone", pid)
	}
}
