package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Faults of the host process itself, checked from its parent (the test): `astrid-host run` with
// the victim, the neighbours and a capsule busy in an endless run loop is sent SIGTERM (it must
// unload everything and exit 0 within its shutdown bound, leaving no shim), or SIGKILL (it runs
// no cleanup; its shims must die with it, by their parent-death signal).

// runShutdownBound is how long `astrid-host run` may take to exit after SIGTERM: the orderly
// unload it does is bounded by 10 s (shutdownTimeout in cmd/astrid-host).
const runShutdownBound = 10 * time.Second

// orphanBound is how long the shims may outlive a host killed by SIGKILL.
const orphanBound = 5 * time.Second

// spinnerWAT is a run-loop capsule that signals ready, then computes forever: a capsule busy in a
// call when the host goes down.
const spinnerWAT = `(module
  (import "extism:host/user" "astrid_signal_ready" (func $ready))
  (func (export "run") (result i32)
    (call $ready)
    (loop $spin (br $spin))
    (i32.const 0)))`

// hostProcessFault is a fault of the host process: the signal it is sent.
type hostProcessFault struct {
	name   string
	signal syscall.Signal
}

func hostProcessFaults() []hostProcessFault {
	return []hostProcessFault{
		{"host SIGTERMed with everything running", syscall.SIGTERM},
		{"host SIGKILLed (checked from its parent)", syscall.SIGKILL},
	}
}

func runHostProcessFault(t *testing.T, stateDir string, tc hostProcessFault) {
	checkLeaks(t) // the readers of the host's output end with it
	// One directory of capsules, as an operator runs them. (Copies: run does not follow
	// symbolic links to capsule directories.)
	dir := t.TempDir()
	for name, src := range map[string]string{
		"faulty":  capsuleVariant(t, "faulty", fastRestartFaulty),
		"ping":    capsuleVariant(t, "ping", ""),
		"pong":    capsuleVariant(t, "pong", ""),
		"spinner": watCapsule(t, "spinner", spinnerWAT, ""),
	} {
		if err := os.Rename(src, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	run := startRun(t, "--state", stateDir, "--tail", "ping.v1.reply", "--publish", `ping.v1.request={"n":7}`, dir)
	if len(run.pids) != 4 {
		t.Fatalf("want 4 capsules loaded, got %v; log:\n%s", run.pids, run.logText())
	}
	// pong, a run loop, answers the request published through the host: the capsules exchange.
	if line := run.awaitStdout(t, `"topic":"ping.v1.reply"`); !strings.Contains(line, `"data":{"n":7}`) {
		t.Fatalf("the reply: %s", line)
	}
	for name, pid := range run.pids {
		if !processAlive(pid) {
			t.Fatalf("the shim of %s (pid %d) is not running", name, pid)
		}
	}
	waitFor(t, 10*time.Second, "the spinner to compute", func() bool { return threadRunning(run.pids["spinner"]) })

	t0 := time.Now()
	if err := run.cmd.Process.Signal(tc.signal); err != nil {
		t.Fatal(err)
	}
	var exited, gone time.Duration
	switch tc.signal {
	case syscall.SIGTERM:
		err := run.wait(t, runShutdownBound)
		exited = time.Since(t0)
		if err != nil {
			t.Fatalf("astrid-host run after SIGTERM: %v; log:\n%s", err, run.logText())
		}
		// Shutdown unloads everything before the host exits: nothing may be left at all.
		for name, pid := range run.pids {
			if processAlive(pid) {
				t.Errorf("the shim of %s (pid %d) outlived its host", name, pid)
			}
			if want := fmt.Sprintf("astrid-host.%s: capsule state: state=stopped", name); !strings.Contains(run.logText(), want) {
				t.Errorf("the log does not say %q", want)
			}
		}
		gone = exited
	case syscall.SIGKILL:
		waitFor(t, orphanBound, "the shims to die with their host", func() bool {
			for _, pid := range run.pids {
				if processAlive(pid) {
					return false
				}
			}
			return true
		})
		gone = time.Since(t0)
		err := run.wait(t, orphanBound)
		exited = time.Since(t0)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("astrid-host run after SIGKILL: %v", err)
		}
	}
	t.Logf("fault %q: the host exited in %s, its last shim was gone after %s; not restarted; neighbours' gap: n/a (they went down with the host)", tc.name, exited, gone)
}

// runningHost is an `astrid-host run` the test started, with what it has said so far.
type runningHost struct {
	cmd  *exec.Cmd
	pids map[string]int // capsule id -> the pid of its shim, from the log
	out  chan string    // stdout lines (--tail); closed at EOF
	done chan struct{}  // closed once stdout and stderr are drained

	mu  sync.Mutex
	log strings.Builder
}

// startRun starts `astrid-host run args...` and returns once it says it is running (every
// capsule loaded and the run loops ready). It is killed at the end of the test if it still runs.
func startRun(t *testing.T, args ...string) *runningHost {
	t.Helper()
	return startRunEnv(t, nil, args...)
}

// startRunEnv is startRun with env added to the host's environment.
func startRunEnv(t *testing.T, env []string, args ...string) *runningHost {
	t.Helper()
	r := &runningHost{cmd: exec.Command(hostBin, append([]string{"run"}, args...)...), pids: map[string]int{},
		out: make(chan string, 1024), done: make(chan struct{})}
	if env != nil {
		r.cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
		r.cmd.Wait()
	})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		defer close(r.out)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case r.out <- sc.Text():
			default: // nobody is reading that far: drop it
			}
		}
	}()
	running := make(chan struct{})
	go func() {
		defer readers.Done()
		loaded := regexp.MustCompile(`astrid-host\.(\w+): capsule loaded: pid=(\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.log.WriteString(line + "\n")
			if m := loaded.FindStringSubmatch(line); m != nil {
				r.pids[m[1]], _ = strconv.Atoi(m[2])
			}
			r.mu.Unlock()
			if strings.Contains(line, "running; send SIGINT or SIGTERM to stop") {
				close(running)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		readers.Wait()
		close(r.done)
	}()
	select {
	case <-running:
	case <-r.done:
		t.Fatalf("astrid-host run ended before it was running: %v; log:\n%s", r.cmd.Wait(), r.logText())
	case <-time.After(2 * time.Minute):
		t.Fatalf("astrid-host run is not running after 2 minutes; log:\n%s", r.logText())
	}
	return r
}

func (r *runningHost) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// awaitStdout returns the first stdout line that contains want.
func (r *runningHost) awaitStdout(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case line, ok := <-r.out:
			if !ok {
				t.Fatalf("astrid-host run's output ended without %s; log:\n%s", want, r.logText())
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("astrid-host run printed no %s; log:\n%s", want, r.logText())
		}
	}
}

// wait waits up to bound for the host to exit and returns how it ended.
func (r *runningHost) wait(t *testing.T, bound time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(bound):
		t.Fatalf("astrid-host run did not exit within %s; log:\n%s", bound, r.logText())
	}
	return r.cmd.Wait()
}

// threadRunning reports whether a thread of process pid is running (or runnable).
func threadRunning(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil && processState(tid) == 'R' {
			return true
		}
	}
	return false
}
