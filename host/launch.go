package host

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared"
)

// KillGrace is how long a shim gets to shut down gracefully before its whole process group is
// SIGKILLed. go-plugin's Kill sends a Shutdown RPC with no deadline, so a stopped or wedged shim
// would block it forever.
const KillGrace = 3 * time.Second

// shimProcess is one running astrid-shim and go-plugin's client for it.
type shimProcess struct {
	client  *plugin.Client
	shim    *shared.ShimClient
	cmd     *exec.Cmd
	pid     int
	sockDir string
}

// launchShim starts a shim for one capsule. The shim gets an explicit environment (nothing of the
// host's), its own process group (so the host can kill everything it started), SIGKILL if the host
// dies, and a private 0700 directory for its socket.
func (h *Host) launchShim(capsuleID string, logger hclog.Logger, fuel bool, kernelArtefact string) (*shimProcess, error) {
	if err := h.cfg.Shim.Recheck(); err != nil {
		return nil, err
	}
	sockDir, err := os.MkdirTemp(h.runDir, capsuleID+"-")
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	cmd := exec.Command(h.cfg.Shim.Path)
	cmd.Env = []string{
		"TMPDIR=" + sockDir, // go-plugin puts the shim's socket in the shim's TMPDIR
		shared.EnvShimLogLevel + "=" + h.cfg.LogLevel.String(),
	}
	if fuel {
		cmd.Env = append(cmd.Env, shared.EnvShimFuel+"=1")
	}
	if h.cache.Has(kernelArtefact) {
		cmd.Env = append(cmd.Env, shared.EnvShimKernel+"="+kernelArtefact)
	}
	cmd.SysProcAttr = sandbox.ProcessAttr()
	client := plugin.NewClient(shared.ClientConfig(cmd, logger))
	p := &shimProcess{client: client, cmd: cmd, sockDir: sockDir}
	rpc, err := client.Client()
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("start %s: %w", h.cfg.Shim.Path, err)
	}
	p.pid = cmd.Process.Pid
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("start %s: %w", h.cfg.Shim.Path, err)
	}
	p.shim = raw.(*shared.ShimClient)
	return p, nil
}

// kill stops the shim: go-plugin's graceful Kill under a watchdog, then SIGKILL to the whole
// process group so nothing the shim started outlives it. It is safe to call more than once.
func (p *shimProcess) kill() {
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(KillGrace):
		p.killGroup()
		<-done
	}
	p.killGroup()
	os.RemoveAll(p.sockDir)
}

func (p *shimProcess) killGroup() {
	if p.pid > 0 {
		_ = sandbox.KillGroup(p.pid)
	}
}

// exitReason says how the shim ended, once it has exited.
func (p *shimProcess) exitReason() string {
	st := p.cmd.ProcessState
	if st == nil {
		return "the shim exited"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("the shim (pid %d) was killed by signal %s", p.pid, ws.Signal())
	}
	return fmt.Sprintf("the shim (pid %d) exited with status %d", p.pid, st.ExitCode())
}

// waitExited waits up to d for the shim process to have exited and been reaped.
func (p *shimProcess) waitExited(d time.Duration) bool {
	select {
	case <-p.shim.Exited.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// runDirFor makes the directory that holds the per-shim socket directories. Unix socket paths
// are limited to 108 bytes, so it lives under the system temporary directory, not the state dir.
func runDirFor() (string, error) {
	dir, err := os.MkdirTemp("", "astrid-run-")
	if err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	return filepath.Clean(dir), nil
}
