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

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

// execRunner is go-plugin's runner for a sandboxed shim the host starts itself (no spawner) when
// the host's broker listens in the shim's socket directory (Host.brokerInSockDir): go-plugin
// makes that directory for the broker only for a runner of the host's (ClientConfig.RunnerFunc).
// It runs the command as go-plugin's own runner does.
type execRunner struct {
	sameAddrs
	logger hclog.Logger
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser
}

var _ runner.Runner = (*execRunner)(nil)

// execRunnerFunc is ClientConfig.RunnerFunc (with no ClientConfig.Cmd) for an execRunner of
// cmd: go-plugin's environment (its handshake) is added to cmd's. The shim keeps listening in its
// own socket directory (its TMPDIR) rather than the broker's directory go-plugin names to it, as
// under the spawner.
func execRunnerFunc(cmd *exec.Cmd) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(logger hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
		for _, kv := range spec.Env {
			if !strings.HasPrefix(kv, plugin.EnvUnixSocketDir+"=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, err
		}
		return &execRunner{logger: logger, cmd: cmd, stdout: stdout, stderr: stderr}, nil
	}
}

// Start starts the shim.
func (r *execRunner) Start(context.Context) error {
	r.logger.Debug("starting plugin", "path", r.cmd.Path, "args", r.cmd.Args)
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.logger.Debug("plugin started", "path", r.cmd.Path, "pid", r.cmd.Process.Pid)
	return nil
}

// Wait waits for the shim to exit (os/exec's Wait).
func (r *execRunner) Wait(context.Context) error { return r.cmd.Wait() }

// Kill SIGKILLs the shim; one that has exited is not an error.
func (r *execRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *execRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *execRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *execRunner) Name() string          { return r.cmd.Path }

// ID is the shim's pid ("" before it has started).
func (r *execRunner) ID() string {
	if r.cmd.Process == nil {
		return ""
	}
	return strconv.Itoa(r.cmd.Process.Pid)
}

// Diagnose has nothing to add to what the shim wrote on stderr.
func (r *execRunner) Diagnose(context.Context) string {
	return fmt.Sprintf("the shim %s was started by the host", r.cmd.Path)
}
