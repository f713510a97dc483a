package sandbox

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
)

// Sandbox starts processes confined as far as its policy and the machine allow.
type Sandbox struct {
	helper  string
	policy  Policy
	support *Support
	// check, if set, runs before each helper start (WithHelperCheck).
	check func() error
}

// New returns a Sandbox that starts processes through helper (the absolute path of an executable
// that runs HelperMain when its first argument is HelperArg: astrid-sandbox, or astrid-host
// itself) with the layers support says this machine has. support may be nil only with policy Off.
//
// The helper's start is on the path of every process started through Command, package
// initialisation included: astrid-sandbox links only this package and starts in about 10 ms of
// CPU, astrid-host (protobuf descriptors, gRPC, NATS, semver's regexps...) in about 45 ms. A Pool
// (NewPool) pays it once for many processes.
func New(helper string, policy Policy, support *Support) *Sandbox {
	return &Sandbox{helper: helper, policy: policy, support: support}
}

// WithHelperCheck makes every start of a helper (Command, and a Pool's warm helpers) call check
// first and fail with its error: the caller's check that the helper file is still the one it
// verified (host.ShimBinary.Recheck). It returns s, and must be called before s is used.
func (s *Sandbox) WithHelperCheck(check func() error) *Sandbox {
	s.check = check
	return s
}

// Policy is the sandbox's policy.
func (s *Sandbox) Policy() Policy { return s.policy }

// Has says whether the sandbox's processes get layer l on this machine (never under policy Off).
func (s *Sandbox) Has(l Layer) bool {
	return s.policy != Off && s.support != nil && s.support.Available(l)
}

// Command prepares spec's process. Under policy Required it fails, naming the missing layer, why,
// and PolicyFlag, when a namespace (user, pid, mount, and network unless spec.Network) or landlock
// is unavailable; under BestEffort the process gets what there is (Cmd.Layers). When the cgroup
// layer is available and spec.Cgroup is not zero it makes the process's cgroup: Wait, or Close
// for a Cmd that is never started or that a launcher waits for, removes it.
func (s *Sandbox) Command(spec Spec) (*Cmd, error) {
	if spec.Path == "" {
		return nil, errors.New("sandbox: no program to run")
	}
	if s.policy == Off {
		return &Cmd{Cmd: execTarget(spec)}, nil
	}
	return s.helperCommand(spec)
}

// Start starts the process. For a process started through the helper it returns once the program
// itself is running, so an error to start it (a missing file, a layer that failed) is returned
// here.
func (c *Cmd) Start() error {
	switch {
	case c.warm != nil:
		return c.startWarm()
	case c.status == nil:
		return c.Cmd.Start()
	}
	return c.startHelper()
}

// Wait waits for the process to end and says how it ended. When it returns, the whole tree is
// gone: what the program left behind is killed (its pid namespace, its group without one) and
// reaped. The error is for a failure to wait, not for a non-zero exit.
func (c *Cmd) Wait() (Exit, error) {
	if c.cleanup != nil {
		defer c.runCleanup()
	}
	switch {
	case c.warm != nil:
		return c.waitWarm()
	case c.status == nil:
		if c.Process != nil && waitExited(c.Process.Pid) == nil {
			// The program is a zombie, so its group id is still reserved: the kill cannot
			// reach a stranger.
			_ = KillGroup(c.Process.Pid)
		}
		c.mu.Lock()
		err := c.Cmd.Wait()
		c.reaped = true
		c.mu.Unlock()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			return Exit{}, err
		}
		return exitOf(c.Cmd.ProcessState.Sys().(syscall.WaitStatus)), nil
	}
	return c.waitHelper()
}

// runCleanup runs the Cmd's cleanup once.
func (c *Cmd) runCleanup() {
	c.cleanupOnce.Do(c.cleanup)
}

// Signal sends sig to the process group of the program (as a terminal would): the program and
// the children that stayed in its group. Through the helper in fork mode the helper is in the
// group too and outlives SIGHUP, SIGINT, SIGTERM and SIGQUIT to report how the program took
// them. In Exec mode the program is the init of its pid namespace, which the kernel shields from
// every signal it has no handler for (a Go program exits with status 2 on SIGTERM rather than
// dying of it); only SIGKILL always ends it.
//
// After Wait it returns an error wrapping ErrExited: the process's pid may belong to another
// process by then.
func (c *Cmd) Signal(sig syscall.Signal) error {
	if c.warm != nil {
		return c.signalWarm(sig)
	}
	if c.Process == nil {
		return errors.New("signal: the process is not started")
	}
	mu, reaped := c.reapState()
	mu.Lock()
	defer mu.Unlock()
	if *reaped {
		return fmt.Errorf("signal: %w", ErrExited)
	}
	if err := syscall.Kill(-c.Process.Pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal: %w", ErrExited)
		}
		return fmt.Errorf("signal %d: %w", int(sig), err)
	}
	return nil
}

// ErrExited is what Signal's error wraps when the process has exited.
var ErrExited = errors.New("the process has exited")

// reapState returns the lock that orders signals before the reap, and the flag the reap sets.
func (c *Cmd) reapState() (*sync.Mutex, *bool) {
	if c.status != nil {
		return &c.status.mu, &c.status.reaped
	}
	return &c.mu, &c.reaped
}

// Kill ends the whole tree the process started: its pid namespace where there is one (the helper
// is its init), its process group, and its cgroup. A tree that is already gone is not an error;
// Kill may be called any number of times, before or after Wait, from any goroutine.
func (c *Cmd) Kill() error {
	if c.warm != nil {
		return c.killWarm()
	}
	if c.Process == nil {
		return nil
	}
	return c.killTree()
}

// exitOf converts a wait status.
func exitOf(ws syscall.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal()}
	}
	return Exit{Code: ws.ExitStatus()}
}
