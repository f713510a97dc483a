package sandbox

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
)

// Sandbox starts processes confined as far as its policy and the machine allow.
type Sandbox struct {
	helper  string
	policy  Policy
	support *Support
}

// New returns a Sandbox that starts processes through helper (an executable that runs HelperMain
// when its first argument is HelperArg: astrid-host itself) with the layers support says this
// machine has. support may be nil only with policy Off.
func New(helper string, policy Policy, support *Support) *Sandbox {
	return &Sandbox{helper: helper, policy: policy, support: support}
}

// Policy is the sandbox's policy.
func (s *Sandbox) Policy() Policy { return s.policy }

// Command prepares spec's process. Under policy Required it fails, naming the missing layer and
// PolicyFlag, when namespaces or landlock are unavailable.
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
	if c.status == nil {
		return c.Cmd.Start()
	}
	return c.startHelper()
}

// Wait waits for the process to end and says how it ended. The error is for a failure to wait,
// not for a non-zero exit.
func (c *Cmd) Wait() (Exit, error) {
	if c.status == nil {
		err := c.Cmd.Wait()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			return Exit{}, err
		}
		return exitOf(c.Cmd.ProcessState.Sys().(syscall.WaitStatus)), nil
	}
	return c.waitHelper()
}

// Signal sends sig to the process group of the program (as a terminal would): the program and
// the children that stayed in its group.
func (c *Cmd) Signal(sig syscall.Signal) error {
	if c.Process == nil {
		return errors.New("signal: the process is not started")
	}
	if err := syscall.Kill(-c.Process.Pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return errors.New("signal: the process has exited")
		}
		return fmt.Errorf("signal %d: %w", int(sig), err)
	}
	return nil
}

// Kill ends the whole tree the process started: its pid namespace where there is one (the helper
// is its init), its process group, and its cgroup. A tree that is already gone is not an error.
func (c *Cmd) Kill() error {
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
