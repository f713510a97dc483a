package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// requirePool returns a Pool under policy Required with every layer, closed when t ends.
func requirePool(t *testing.T, maxIdle int) *Pool {
	t.Helper()
	pool := requireSandbox(t).NewPool(t.TempDir(), maxIdle)
	t.Cleanup(func() {
		if err := pool.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return pool
}

// pooled prepares spec from pool, failing t on error.
func pooled(t *testing.T, pool *Pool, spec Spec) *Cmd {
	t.Helper()
	cmd, err := pool.Command(spec)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	return cmd
}

// startReady starts cmd with its stdout on a pipe and waits for its "ready" line.
func startReady(t *testing.T, cmd *Cmd) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if line, err := bufio.NewReader(r).ReadString('\n'); line != "ready\n" {
		cmd.Kill()
		cmd.Wait()
		t.Fatalf("the program said %q, %v", line, err)
	}
}

// gone reports whether process pid has been reaped.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestPoolReuse: programs run one after another in the same warm helper, and each finds what a
// fresh sandbox gives it: an empty private /tmp and /dev/shm (whatever the one before left
// there, locked-down directories included), and nothing the one before left running.
func TestPoolReuse(t *testing.T) {
	pool := requirePool(t, 0)
	workspace := t.TempDir()
	spec := program("__scratch")
	spec.Dir, spec.ReadWrite = workspace, []string{workspace}

	first := pooled(t, pool, spec)
	r1 := runCmd(t, first)
	second := pooled(t, pool, spec)
	r2 := runCmd(t, second)
	if first.Process.Pid != second.Process.Pid {
		t.Errorf("the second program ran in helper %d, not in the first one's (%d)", second.Process.Pid, first.Process.Pid)
	}
	if r1.exit != (Exit{}) || r2.exit != (Exit{}) {
		t.Fatalf("exits %v, %v (stderr %q, %q)", r1.exit, r2.exit, r1.stderr, r2.stderr)
	}
	if r2.stdout != r1.stdout || strings.Contains(r2.stdout, "left-behind") || strings.Contains(r2.stdout, "locked") {
		t.Errorf("the second program found\n%s\nthe first found\n%s", r2.stdout, r1.stdout)
	}

	token := "astrid-pool-orphans-" + strconv.Itoa(os.Getpid())
	spec = program("__orphans", token)
	spec.Dir, spec.ReadWrite = workspace, []string{workspace}
	third := pooled(t, pool, spec)
	if r := runCmd(t, third); r.exit != (Exit{}) {
		t.Fatalf("__orphans: %v, %q %q", r.exit, r.stdout, r.stderr)
	}
	if n := countProcesses(token); n != 0 {
		t.Errorf("%d processes the program left behind are still there after Wait; want 0", n)
	}
	if third.Process.Pid != first.Process.Pid {
		t.Errorf("the third program ran in helper %d, not %d", third.Process.Pid, first.Process.Pid)
	}
}

// TestPoolEscape: a warm helper keeps every layer for the programs after the first: the escape
// suite's attempts, each through the same helper, all fail.
func TestPoolEscape(t *testing.T) {
	pool := requirePool(t, 0)
	e := newEscapeEnv(t)
	helper := 0
	for _, c := range escapeCases {
		t.Run(c.name, func(t *testing.T) {
			spec := program("__escape", c.attempt(e)...)
			spec.Dir = e.workspace
			spec.ReadWrite = []string{e.workspace}
			spec.Hidden = []string{e.state}
			if c.spec != nil {
				c.spec(&spec)
			}
			cmd := pooled(t, pool, spec)
			want := c.want(func(l Layer) bool { return containsLayer(cmd.Layers, l) }, e)
			if want == "" {
				t.Skipf("nothing in %v stops it", cmd.Layers)
			}
			r := runCmd(t, cmd)
			got := strings.TrimSpace(r.stdout)
			if got == "ENOENT" && strings.HasPrefix(e.outside, os.TempDir()) {
				// A Pool always gives a private /tmp, which hides the targets the escape
				// environment made under the host's: the attempt fails before any layer is asked.
				want = got
			}
			if !strings.HasPrefix(got, want) || r.exit != (Exit{}) {
				t.Errorf("got %q (%v, stderr %q), want %q", got, r.exit, r.stderr, want)
			}
			if c.spec == nil {
				if helper != 0 && cmd.Process.Pid != helper {
					t.Errorf("ran in helper %d, not in the one before (%d)", cmd.Process.Pid, helper)
				}
				helper = cmd.Process.Pid
			}
		})
	}
}

// TestPoolKillAndSignal: Kill ends the program's helper with it (the next program gets a new
// one); a signal reaches the program and its helper stays; after Wait, Signal refuses.
func TestPoolKillAndSignal(t *testing.T) {
	pool := requirePool(t, 0)

	trap := pooled(t, pool, program("__sigtrap"))
	startReady(t, trap)
	if err := trap.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exit, err := trap.Wait(); err != nil || exit != (Exit{Code: 7}) {
		t.Fatalf("after SIGTERM: %v, %v; want exit status 7", exit, err)
	}
	if err := trap.Signal(syscall.SIGTERM); !errors.Is(err, ErrExited) {
		t.Errorf("Signal after Wait: %v, want ErrExited", err)
	}
	if gone(trap.Process.Pid) {
		t.Fatal("the helper ended with its program")
	}

	ready := pooled(t, pool, program("__ready"))
	startReady(t, ready)
	if ready.Process.Pid != trap.Process.Pid {
		t.Errorf("ran in helper %d, not in the idle one (%d)", ready.Process.Pid, trap.Process.Pid)
	}
	if err := ready.Kill(); err != nil {
		t.Fatal(err)
	}
	if exit, err := ready.Wait(); err != nil || exit.Signal != syscall.SIGKILL {
		t.Fatalf("after Kill: %v, %v; want killed", exit, err)
	}
	if !gone(ready.Process.Pid) {
		t.Errorf("the helper %d outlived Kill", ready.Process.Pid)
	}

	after := pooled(t, pool, program("__exit", "3"))
	if r := runCmd(t, after); r.exit != (Exit{Code: 3}) {
		t.Errorf("after a Kill: %v, want exit status 3", r.exit)
	}
	if after.Process.Pid == ready.Process.Pid {
		t.Error("a killed helper was used again")
	}
}

// TestPoolRecovers: an idle helper that died is replaced; a program that cannot start leaves
// its helper usable; stdio that is not a file is refused, naming what is allowed.
func TestPoolRecovers(t *testing.T) {
	pool := requirePool(t, 0)
	first := pooled(t, pool, program("__exit", "0"))
	runCmd(t, first)
	if err := syscall.Kill(first.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := pooled(t, pool, program("__exit", "4"))
	if r := runCmd(t, second); r.exit != (Exit{Code: 4}) {
		t.Fatalf("after the idle helper died: %v (stderr %q), want exit status 4", r.exit, r.stderr)
	}
	if second.Process.Pid == first.Process.Pid {
		t.Error("the dead helper was used again")
	}

	missing := pooled(t, pool, Spec{Path: "/nonexistent/program"})
	if err := missing.Start(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Start of a missing program: %v, want ErrNotExist", err)
	}
	third := pooled(t, pool, program("__exit", "0"))
	runCmd(t, third)
	if third.Process.Pid != second.Process.Pid {
		t.Errorf("after a failed start the next program ran in helper %d, not %d", third.Process.Pid, second.Process.Pid)
	}

	buffered := pooled(t, pool, program("__exit", "0"))
	buffered.Stdout = &bytes.Buffer{}
	if err := buffered.Start(); err == nil || !strings.Contains(err.Error(), "*os.File or nil") {
		t.Errorf("Start with a bytes.Buffer stdout: %v, want a refusal naming *os.File", err)
	}
}

// TestPoolIdleLimit: a Pool keeps at most maxIdle idle helpers and ends the others as their
// programs exit; Close ends the idle ones and refuses new starts.
func TestPoolIdleLimit(t *testing.T) {
	pool := requireSandbox(t).NewPool(t.TempDir(), 1)
	a, b := pooled(t, pool, program("__sigtrap")), pooled(t, pool, program("__sigtrap"))
	startReady(t, a)
	startReady(t, b)
	if a.Process.Pid == b.Process.Pid {
		t.Fatal("two programs running at once share a helper")
	}
	for _, c := range []*Cmd{a, b} {
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if exit, err := c.Wait(); err != nil || exit != (Exit{Code: 7}) {
			t.Fatalf("%v, %v", exit, err)
		}
	}
	if gone(a.Process.Pid) || !gone(b.Process.Pid) {
		t.Errorf("with one idle helper allowed: the first helper gone=%v, the second gone=%v; want false, true",
			gone(a.Process.Pid), gone(b.Process.Pid))
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(a.Process.Pid) {
		t.Error("Close left the idle helper running")
	}
	if err := pooled(t, pool, program("__exit", "0")).Start(); !errors.Is(err, errPoolClosed) {
		t.Errorf("Start after Close: %v, want %v", err, errPoolClosed)
	}
}

// TestPoolCommandRefuses: what a Pool cannot run is refused up front.
func TestPoolCommandRefuses(t *testing.T) {
	pool := New(testBin, Off, nil).NewPool(t.TempDir(), 0)
	defer pool.Close()
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Path: testBin, Exec: true}, "fork mode only"},
		{Spec{Path: testBin, PrivateTmp: "/tmp"}, "leave Spec.PrivateTmp empty"},
		{Spec{}, "no program"},
	} {
		if _, err := pool.Command(tt.spec); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Command(%+v): %v, want an error saying %q", tt.spec, err, tt.want)
		}
	}
}
