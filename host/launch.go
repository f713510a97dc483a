package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/goplugin"
)

// KillGrace is how long a shim gets to shut down gracefully before its whole process group is
// SIGKILLed. go-plugin's Kill sends a Shutdown RPC with no deadline, so a stopped or wedged shim
// would block it forever.
const KillGrace = 3 * time.Second

// shimProcess is one running astrid-shim and go-plugin's client for it.
type shimProcess struct {
	client *plugin.Client
	shim   *goplugin.ShimClient
	cmd    *exec.Cmd
	// spawned is go-plugin's runner when the spawner started the shim (cmd is then not started).
	spawned *spawnRunner
	pid     int
	sockDir string
	// stderr keeps the last lines the shim wrote to stderr outside its log, for crash events.
	stderr *stderrTail
	// sandbox lists the sandbox layers the shim runs under, for the log.
	sandbox string
	// confined is the sandbox's handle on the shim (nil without a sandbox): kill closes it,
	// which ends what is left in the shim's cgroup and removes the cgroup.
	confined *sandbox.Cmd
	// calls is the host's end of the shim's call connection (shared/callwire): export calls go
	// out on it and the guest's host calls come in, for the one instance serveHostServices binds
	// it to.
	calls *callwire.HostEnd
	// grpc says when go-plugin's gRPC connection to the shim ends (see connWatch).
	grpc *connWatch
	// spare says the shim was started ahead, before its capsule was known (shimPool).
	spare bool
	// artefacts is the host's end of the channel the capsule's artefact is sent on (handOver).
	// handedOver is closed once the artefact has been checked and sent, or found missing or
	// bad, or once the shim is killed without a capsule (then the channel is closed unsent);
	// hasArtefact says which.
	artefacts   *os.File
	handOnce    sync.Once
	handedOver  chan struct{}
	hasArtefact bool
	// opened receives, once, what launchShim found in the cache for the capsule: the checked
	// artefact, or the claim to compile it (compileClaims). The hand-over takes it (taken); if
	// the shim was killed before the hand-over ran, releaseClaim does. claim ends the claim, if
	// any. All three are used by the hand-over, before handedOver is closed, and after it by the
	// load's goroutine only.
	opened chan opened
	taken  bool
	claim  func()
}

// opened is what launchShim's look in the cache found: the artefact, or a claim to compile it.
type opened struct {
	f     *os.File
	claim func()
}

// takeOpened takes what the look in the cache found (once; nil and nil after).
func (p *shimProcess) takeOpened() (*os.File, func()) {
	if p.taken || p.opened == nil {
		return nil, nil
	}
	p.taken = true
	o := <-p.opened
	p.claim = o.claim
	return o.f, o.claim
}

// releaseClaim ends the load's claim to compile its module, if it has one: once the compile is
// done, or when the load failed before it. Only the load's goroutine calls it.
func (p *shimProcess) releaseClaim() {
	<-p.handedOver
	if f, _ := p.takeOpened(); f != nil {
		f.Close() // the shim was killed before it was handed over
	}
	if p.claim != nil {
		p.claim()
	}
}

// artefactSent waits until the handover of the capsule's cached artefact is over and reports
// whether the shim got one.
func (p *shimProcess) artefactSent() bool {
	<-p.handedOver
	return p.hasArtefact
}

// shimKey is what a shim's start depends on besides the host: its engine (fuel metering on or
// off) and its cgroup's memory limit (the capsule's [limits] memory, see shimCgroup). Shims of
// one key are interchangeable until one is given a capsule (see shimPool).
type shimKey struct {
	fuel   bool
	memory uint64
}

// launchShim gives one capsule a shim: a spare the host started ahead with the same key (see
// shimPool), or a new one. Either way the shim has run no guest code before. The cached
// artefact of the capsule's module, if the cache has a good one, is then handed over as a
// sealed descriptor (see ModuleCache.Open; the shim has no access to the cache): it is checked
// while the shim starts or while the host goes on with the load (the check costs about a
// millisecond a megabyte) and sent once checked (shared.SendArtefact): p.artefactSent reports
// whether it was.
func (h *Host) launchShim(ctx context.Context, key shimKey, logger hclog.Logger, artefact string) (*shimProcess, error) {
	// The check runs while the shim is taken or started. A module no load has compiled yet is
	// compiled by one load at a time (compileClaims): the others wait here, while their shims
	// start, and then find it in the cache.
	checked := make(chan opened, 1)
	go func() {
		f, claim := h.openOrClaim(ctx, func() *os.File { return h.openArtefact(logger, artefact) }, artefact)
		checked <- opened{f, claim}
	}()
	p, err := h.spares.take(ctx, key, logger)
	if err == nil && p == nil {
		p, err = h.startShim(key, logger)
	}
	if err != nil {
		o := <-checked
		if o.f != nil {
			o.f.Close()
		}
		if o.claim != nil {
			o.claim()
		}
		return nil, err
	}
	logger.Debug("shim given to the capsule", "pid", p.pid, "spare", p.spare, "sandbox", p.sandbox)
	p.opened = checked
	p.handOver(func() bool {
		f, _ := p.takeOpened()
		if f == nil {
			return false
		}
		defer f.Close()
		if err := shared.SendArtefact(p.artefacts, f); err != nil {
			logger.Warn("cannot hand the cached artefact over; compiling again", "artefact", artefact, "error", err)
			return false
		}
		return true
	})
	return p, nil
}

// startShim starts a shim with no capsule yet. The shim gets an explicit environment (nothing of
// the host's), its own process group (so the host can kill everything it started), SIGKILL if
// the host dies, a private 0700 directory for its socket, and the sandbox (shimCommand); none of
// it depends on a capsule beyond key. The cached artefact of the kernel for key's engine, if the
// cache has a good one, is inherited as a sealed descriptor; the capsule's module comes later,
// on the artefact channel (handOver). logger receives the shim's own log.
func (h *Host) startShim(key shimKey, logger hclog.Logger) (p *shimProcess, err error) {
	if err := h.cfg.Shim.Recheck(); err != nil {
		return nil, err
	}
	sockDir, err := os.MkdirTemp(h.runDir, "shim-")
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	env := []string{
		"TMPDIR=" + sockDir, // go-plugin puts the shim's socket in the shim's TMPDIR
		shared.EnvShimLogLevel + "=" + h.cfg.LogLevel.String(),
	}
	if key.fuel {
		env = append(env, shared.EnvShimFuel+"=1")
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close() // the shim has its own copies
		}
	}()
	if f := h.openArtefact(logger, h.cache.KernelPath(h.cfg.Shim.SHA256, key.fuel)); f != nil {
		env = append(env, fmt.Sprintf("%s=%d", shared.EnvShimKernelFD, 3+len(files)))
		files = append(files, f)
	}
	hostEnd, shimEnd, err := shared.ArtefactSocket()
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	env = append(env, fmt.Sprintf("%s=%d", shared.EnvShimArtefactSocket, 3+len(files)))
	files = append(files, shimEnd)
	// The call connection: two pipes without a name, so no other process can reach either end.
	callsHost, callsShim, err := callwire.Pair()
	if err != nil {
		hostEnd.Close()
		os.RemoveAll(sockDir)
		return nil, err
	}
	var callsEnv string
	files, callsEnv = callsShim.Attach(files)
	env = append(env, callsEnv)
	p = &shimProcess{sockDir: sockDir, artefacts: hostEnd, handedOver: make(chan struct{}), calls: callwire.NewHostEnd(callsHost), grpc: newConnWatch()}
	fail := func(err error) (*shimProcess, error) {
		p.kill()
		return nil, err
	}
	cmd, confined, layers, err := h.shimCommand(env, sockDir, key.memory)
	if err != nil {
		p.handOver(nil)
		p.calls.Close()
		os.RemoveAll(sockDir)
		return nil, err
	}
	cmd.ExtraFiles = files
	logger.Debug("starting the shim", "sandbox", layers)
	cfg := goplugin.ClientConfig(cmd, logger)
	cfg.GRPCDialOptions = append(cfg.GRPCDialOptions, grpc.WithStatsHandler(p.grpc))
	if confined != nil {
		if h.brokerInSockDir() {
			// The shim dials the host's broker (its host services) at a path. Its sandbox covers
			// /dev/shm, where the runtime directory is, with a tmpfs of its own and binds back
			// only its socket directory: the broker listens in there. go-plugin makes a
			// directory for the broker only for a runner of the host's.
			cfg.UnixSocketConfig = &plugin.UnixSocketConfig{TempDir: sockDir}
			cfg.Cmd, cfg.RunnerFunc = nil, execRunnerFunc(cmd)
		}
		if sp := h.shimSpawner(); sp != nil {
			p.spawned = &spawnRunner{sp: sp, cmd: confined}
			cfg.Cmd, cfg.RunnerFunc = nil, p.spawned.runnerFunc
		}
	}
	tail := &stderrTail{}
	cfg.Stderr = tail
	client := plugin.NewClient(cfg)
	p.client, p.cmd, p.stderr, p.sandbox, p.confined = client, cmd, tail, layers, confined
	rpc, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("start %s: %w", h.cfg.Shim.Path, err))
	}
	if p.spawned != nil {
		p.pid = p.spawned.proc.Pid
	} else {
		p.pid = cmd.Process.Pid
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		return fail(fmt.Errorf("start %s: %w", h.cfg.Shim.Path, err))
	}
	p.shim = raw.(*goplugin.ShimClient)
	return p, nil
}

// handOver runs send, which hands the capsule's artefact over on p.artefacts and reports
// whether it did, on its own goroutine, once; a nil send (a shim that never gets a capsule)
// hands nothing over. The channel's host end is closed after it: a shim waiting for an artefact
// then finds none.
func (p *shimProcess) handOver(send func() bool) {
	p.handOnce.Do(func() {
		go func() {
			defer close(p.handedOver)
			defer p.artefacts.Close()
			if send != nil {
				p.hasArtefact = send()
			}
		}()
	})
}

// openArtefact is the cached artefact at path as a sealed descriptor to hand a shim, or nil when
// the cache has none it can vouch for. One that fails its check has been deleted and is logged
// as an error: something other than the host wrote the cache.
func (h *Host) openArtefact(logger hclog.Logger, path string) *os.File {
	f, err := h.cache.Open(path)
	switch {
	case errors.Is(err, ErrTampered):
		logger.Error("a cached artefact failed its check: deleted, compiling again", "artefact", path, "error", err)
	case err != nil:
		logger.Warn("cannot read a cached artefact; compiling again", "artefact", path, "error", err)
	}
	return f
}

// serveHostServices serves the host functions to inst's shim and returns the broker id the shim
// dials. Only the shim's own process may connect (see goplugin.ShimClient.ServeHostServices): a
// connection from any other process (another capsule's shim, a process a capsule spawned) is
// closed before it is read, and logged under the instance it tried to reach. If the intruder is
// another instance's shim, that shim is stopped as compromised: a correct shim dials only the
// services the host named for it.
func (p *shimProcess) serveHostServices(inst *Instance) uint32 {
	services := &hostServices{inst: inst}
	// The call connection reaches only this shim, so what comes in on it is this instance's.
	go func() {
		p.calls.HandlePublishes(services.publishFrame) // before Serve reads a frame
		p.calls.HandleLogs(services.logLines)
		p.calls.HandleAnswered(services.answered)
		p.calls.HandleQuick(quickHostCall)
		err := p.calls.Serve(services.HostCall, inst.compromised)
		inst.log.Debug("the call connection ended", "error", err)
	}()
	return p.shim.ServeHostServices(services, p.pid, func(peerPID int, err error) {
		intruder := inst.host.instanceByPid(peerPID)
		name := ""
		if intruder != nil {
			name = intruder.ID()
		}
		inst.log.Error("refused a connection to this capsule's host services", "peer_pid", peerPID, "peer_capsule", name, "shim_pid", p.pid, "reason", err)
		if intruder != nil && intruder != inst {
			intruder.compromised(fmt.Errorf("its shim (pid %d) connected to the host services of capsule %s", peerPID, inst.ID()))
		}
	})
}

// instanceByPid is the instance whose shim is pid, or nil.
func (h *Host) instanceByPid(pid int) *Instance {
	if pid <= 0 {
		return nil
	}
	h.mu.Lock()
	insts := slices.Concat(h.instances, h.pending) // a reload's next instance connects too
	h.mu.Unlock()
	for _, inst := range insts {
		if inst.Pid() == pid {
			return inst
		}
	}
	return nil
}

// shimFileSizeLimit is the shim's RLIMIT_FSIZE: 8 GiB, above any linear memory wasmtime backs
// with a memfd (a 32-bit memory is at most 4 GiB).
const shimFileSizeLimit = 8 << 30

// shimCommand is the command that starts a shim, confined by the host's sandbox: it reads only
// the system's libraries and its own executable (its artefacts arrive as descriptors), writes
// only its socket directory, has no network, and cannot create namespaces; where cgroups allow,
// its memory is capped at the capsule's [limits] memory plus ShimMemoryOverhead (see
// shimCgroup). Without a sandbox it gets the process layer only.
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
		ReadOnly:  []string{h.cfg.Shim.Path},
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
	if p.calls != nil {
		p.calls.Close()
	}
	if p.handedOver != nil {
		p.handOver(nil) // a shim killed before it got a capsule
		<-p.handedOver  // the artefact check ends on its own, in milliseconds
	}
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
	var ws syscall.WaitStatus
	switch {
	case p.spawned != nil && p.spawned.proc != nil:
		st, ok := p.spawned.proc.Status()
		if !ok {
			return "the shim exited"
		}
		ws = st
	case p.cmd.ProcessState != nil:
		st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok {
			return "the shim exited"
		}
		ws = st
	default:
		return "the shim exited"
	}
	if ws.Signaled() {
		return fmt.Sprintf("the shim (pid %d) was killed by signal %s", p.pid, ws.Signal())
	}
	return fmt.Sprintf("the shim (pid %d) exited with status %d", p.pid, ws.ExitStatus())
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
