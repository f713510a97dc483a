package host

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	// stderr keeps the last lines the shim wrote to stderr outside its log, for crash events.
	stderr *stderrTail
	// sandbox lists the sandbox layers the shim runs under, for the log.
	sandbox string
	// confined is the sandbox's handle on the shim (nil without a sandbox): kill closes it,
	// which ends what is left in the shim's cgroup and removes the cgroup.
	confined *sandbox.Cmd
}

// launchShim starts a shim for one capsule. The shim gets an explicit environment (nothing of the
// host's), its own process group (so the host can kill everything it started), SIGKILL if the host
// dies, and a private 0700 directory for its socket.
func (h *Host) launchShim(capsuleID string, memory uint64, logger hclog.Logger, fuel bool, kernelArtefact string) (*shimProcess, error) {
	if err := h.cfg.Shim.Recheck(); err != nil {
		return nil, err
	}
	sockDir, err := os.MkdirTemp(h.runDir, capsuleID+"-")
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	env := []string{
		"TMPDIR=" + sockDir, // go-plugin puts the shim's socket in the shim's TMPDIR
		shared.EnvShimLogLevel + "=" + h.cfg.LogLevel.String(),
	}
	if fuel {
		env = append(env, shared.EnvShimFuel+"=1")
	}
	if h.cache.Has(kernelArtefact) {
		env = append(env, shared.EnvShimKernel+"="+kernelArtefact)
	}
	cmd, confined, layers, err := h.shimCommand(env, sockDir, memory)
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	logger.Debug("starting the shim", "sandbox", layers)
	cfg := shared.ClientConfig(cmd, logger)
	tail := &stderrTail{}
	cfg.Stderr = tail
	client := plugin.NewClient(cfg)
	p := &shimProcess{client: client, cmd: cmd, sockDir: sockDir, stderr: tail, sandbox: layers, confined: confined}
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

// shimFileSizeLimit is the shim's RLIMIT_FSIZE: 8 GiB, above any linear memory wasmtime backs
// with a memfd (a 32-bit memory is at most 4 GiB).
const shimFileSizeLimit = 8 << 30

// shimCommand is the command that starts a shim, confined by the host's sandbox: it reads only
// the system's libraries, its own executable and the module cache, writes only its socket
// directory, has no network, and cannot create namespaces; where cgroups allow, its memory is
// capped at the capsule's [limits] memory plus ShimMemoryOverhead (see shimCgroup). Without a
// sandbox it gets the process layer only.
func (h *Host) shimCommand(env []string, sockDir string, memory uint64) (*exec.Cmd, *sandbox.Cmd, string, error) {
	if h.cfg.Sandbox == nil {
		cmd := exec.Command(h.cfg.Shim.Path)
		cmd.Env = env
		cmd.SysProcAttr = sandbox.ProcessAttr()
		return cmd, nil, "process", nil
	}
	sc, err := h.cfg.Sandbox.Command(sandbox.Spec{
		Path:      h.cfg.Shim.Path,
		Env:       env,
		Exec:      true,
		ReadOnly:  []string{h.cfg.Shim.Path, h.cache.Dir()},
		ReadWrite: []string{sockDir},
		// The shim writes no file, but wasmtime backs linear memories with memfds, whose size
		// RLIMIT_FSIZE bounds: leave room for the largest memory a capsule may have.
		Rlimits: sandbox.Rlimits{FileSize: shimFileSizeLimit},
		// The state directory (the cache's key) is no shim's business; the paths above stay.
		Hidden: []string{h.cfg.StateDir},
		Cgroup: shimCgroup(memory),
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("sandbox the shim: %w", err)
	}
	return sc.Cmd, sc, layerNames(sc.Layers), nil
}

// layerNames lists sandbox layers for a log line ("process" when there is none beyond it).
func layerNames(layers []sandbox.Layer) string {
	if len(layers) == 0 {
		return "process"
	}
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = string(l)
	}
	return strings.Join(names, ",")
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
	if p.confined != nil {
		_ = p.confined.Close() // its cgroup
	}
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
