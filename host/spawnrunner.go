package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox"
)

// spawnerState is the host's spawner (sandbox.Spawner), started in the background by New when
// shims are sandboxed and ended by Shutdown. Shims started through it skip the clone of the
// host's address space (see "The start path" in docs/architecture.md); where it cannot start,
// or once it has ended, shims start from the host as before.
type spawnerState struct {
	mu       sync.Mutex
	sp       *sandbox.Spawner
	starting chan struct{} // closed once the start has ended; nil without one
	failed   bool          // it could not start, or ended: shims start from the host
	closed   bool
}

// startSpawner starts the host's spawner in the background, if shims are sandboxed and the
// machine has pidfds (the spawner hands each process's pidfd back, so that signals cannot reach
// a stranger).
func (h *Host) startSpawner() {
	if h.cfg.Sandbox == nil || h.cfg.Sandbox.Policy() == sandbox.Off {
		return
	}
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return
	}
	unix.Close(fd)
	s := &h.spawner
	s.starting = make(chan struct{})
	go func() {
		defer close(s.starting)
		sp, err := h.cfg.Sandbox.StartSpawner()
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case err != nil:
			h.log.Warn("cannot start the shim spawner; shims start from the host", "error", err)
			s.failed = true
		case s.closed:
			_ = sp.Close()
		default:
			s.sp = sp
		}
	}()
}

// shimSpawner returns the host's spawner, once its start has ended; nil when shims start from
// the host (no spawner, or it could not start or has ended).
func (h *Host) shimSpawner() *sandbox.Spawner {
	s := &h.spawner
	if s.starting == nil {
		return nil
	}
	<-s.starting
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failed || s.sp == nil {
		return nil
	}
	select {
	case <-s.sp.Done():
		h.log.Warn("the shim spawner has ended; shims start from the host")
		s.failed = true
		return nil
	default:
		return s.sp
	}
}

// close ends the spawner, once its start has ended if it is starting; shims it started and
// that still run get their parent-death signal.
func (s *spawnerState) close() {
	s.mu.Lock()
	s.closed = true
	starting := s.starting
	s.mu.Unlock()
	if starting != nil {
		<-starting
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sp != nil {
		_ = s.sp.Close()
		s.sp = nil
	}
}

// spawnRunner is go-plugin's runner for a shim started through the spawner: cmd is the sandbox's
// command for the shim, which the spawner starts instead of go-plugin's os/exec.
type spawnRunner struct {
	sameAddrs
	logger hclog.Logger
	sp     *sandbox.Spawner
	cmd    *sandbox.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser
	proc   *sandbox.Spawned
}

var _ runner.Runner = (*spawnRunner)(nil)

// runnerFunc is ClientConfig.RunnerFunc: it adds go-plugin's environment (its handshake) to the
// shim's. With a RunnerFunc go-plugin makes a socket directory for the client ($TMPDIR/plugin-dir*,
// where the host's broker listens, removed by Kill) and names it to the shim too; the shim keeps
// listening in its own socket directory (its TMPDIR), the one it may write, at the path length
// it had.
func (r *spawnRunner) runnerFunc(logger hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
	r.logger = logger
	for _, kv := range spec.Env {
		if !strings.HasPrefix(kv, plugin.EnvUnixSocketDir+"=") {
			r.cmd.Env = append(r.cmd.Env, kv)
		}
	}
	return r, nil
}

// Start starts the shim through the spawner, with pipes for its stdout (go-plugin's handshake)
// and stderr.
func (r *spawnRunner) Start(context.Context) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	r.cmd.Stdout, r.cmd.Stderr = outW, errW
	r.logger.Debug("starting plugin", "path", r.cmd.Path, "args", r.cmd.Args)
	p, err := r.sp.StartCmd(r.cmd)
	outW.Close() // the shim has its own
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	r.proc, r.stdout, r.stderr = p, outR, errR
	r.logger.Debug("plugin started", "path", r.cmd.Path, "pid", p.Pid)
	return nil
}

// Wait waits for the shim to exit; an exit other than status 0 is an error, as os/exec's.
func (r *spawnRunner) Wait(context.Context) error {
	st, err := r.proc.Wait()
	if err != nil {
		return err
	}
	if st.Exited() && st.ExitStatus() == 0 {
		return nil
	}
	return errors.New(exitText(st))
}

// Kill SIGKILLs the shim (through its pidfd); one that has exited is not an error.
func (r *spawnRunner) Kill(context.Context) error {
	if r.proc == nil {
		return nil
	}
	return r.proc.Signal(syscall.SIGKILL)
}

func (r *spawnRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *spawnRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *spawnRunner) Name() string          { return r.cmd.Path }

// ID is the shim's pid.
func (r *spawnRunner) ID() string {
	if r.proc == nil {
		return ""
	}
	return strconv.Itoa(r.proc.Pid)
}

// Diagnose has nothing to add to what the shim wrote on stderr.
func (r *spawnRunner) Diagnose(context.Context) string {
	return fmt.Sprintf("the shim %s was started through the sandbox spawner", r.cmd.Path)
}

// exitText says how a process ended, as os/exec's ExitError does.
func exitText(st syscall.WaitStatus) string {
	if st.Signaled() {
		return "signal: " + st.Signal().String()
	}
	return "exit status " + strconv.Itoa(st.ExitStatus())
}

// sameAddrs is the address translation of the host's runners (spawnRunner, execRunner): none.
// A shim's socket lies in a directory the host sees at the same path, and the shim reaches the
// host's sockets at theirs.
type sameAddrs struct{}

// PluginToHost keeps the shim's addresses.
func (sameAddrs) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

// HostToPlugin keeps the host's addresses.
func (sameAddrs) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
