package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/cluster"
	"github.com/astrid-go/astrid/host/internal/kvstore"
	"github.com/astrid-go/astrid/host/internal/safefile"
	"github.com/astrid-go/astrid/host/internal/wasmscan"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/metrics"
	"github.com/astrid-go/astrid/host/process"
	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/host/syssock"
	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// Config configures a Host.
type Config struct {
	// Shim is the verified astrid-shim executable (see VerifyShim).
	Shim *ShimBinary
	// StateDir holds the host's persistent state: compiled modules are cached in StateDir/modules,
	// and the host's database is StateDir/kv.db (the capsules' KV store, the identity store and
	// the approve_always allowances), which one host at a time may hold (it is opened when a
	// capsule that uses it loads or first calls it).
	StateDir string
	// Workspace is the directory capsules work in: the processes they spawn run in it and may
	// write only there (and in a private tmp). Default: the current directory.
	Workspace string
	// Logger receives the host's log and every capsule's, each capsule as a named sub-logger.
	Logger hclog.Logger
	// LogLevel is the level of the host's log (default info). Shims and capsules drop lines below
	// it at the source, and guests read it with get_log_level.
	LogLevel hclog.Level
	// HealthInterval is how often the host checks each Ready capsule's shim (default 10 s, as
	// upstream's health monitor); HealthTimeout is how long the shim has to answer (default 2 s).
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// ReadyTimeout bounds Boot's wait for each run-loop capsule to signal ready
	// (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// AllowPrivateNetwork lets capsules' HTTP requests reach loopback, private, link-local and
	// other non-public addresses, which the SSRF rule otherwise refuses. For tests.
	AllowPrivateNetwork bool
	// Sandbox confines the shims and the processes capsules spawn (see package sandbox). The
	// CLI always sets one (--sandbox). With nil, shims get only the process layer (own process
	// group, SIGKILL on the host's death) and the process host functions are refused.
	Sandbox *sandbox.Sandbox
	// ApprovalTimeout is how long a capsule's approval request (astrid_request_approval) waits
	// for an answer before it is denied; default DefaultApprovalTimeout (60 s, as upstream).
	ApprovalTimeout time.Duration
	// SpareShims is how many shims of each kind a capsule has used the host keeps started
	// ahead, in their sandbox, so that a capsule's start is a load and not a process start (see
	// shimPool): 0 means DefaultSpareShims (1), a negative number none. Boot starts one more per
	// capsule it loads, all at once, and ends those left over.
	SpareShims int
	// PassEnv are the host's environment variables spawned processes inherit: PATH, LANG,
	// LC_ALL, LC_CTYPE and TZ (nothing else of the host's environment reaches them). New fills it
	// from the host's environment when it is nil.
	PassEnv map[string]string
}

// Health check defaults (Config.HealthInterval, Config.HealthTimeout).
const (
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// Host runs capsules.
type Host struct {
	cfg    Config
	log    hclog.Logger
	cache  *ModuleCache
	runDir string
	// runLock holds the runtime directory's lock (lockRunDir) until RemoveRuntimeDir.
	runLock *os.File
	// spawner starts the sandboxed shims (see shimSpawner); Shutdown ends it.
	spawner spawnerState
	// kv is the capsules' KV store, opened on first use so that a host whose capsules never use
	// it never takes its lock; closed by Shutdown.
	kv *kvstore.Lazy
	// approvals are the approval requests waiting for an answer and the allowances answers left.
	approvals *approvals

	bus *bus.Bus
	// metrics records what happens for the host's Prometheus metrics (RegisterMetrics).
	metrics *metrics.Recorder
	// link connects bus to other hosts' (JoinBus); nil when the bus is this host's alone.
	linkMu sync.Mutex
	link   *cluster.Link
	// dispatch runs the interceptors of capsules without a run export for the bus's messages.
	dispatch *dispatcher
	// closing ends when Shutdown begins; pending restarts wait on it.
	closing      context.Context
	stopRestarts context.CancelFunc
	// restarts tracks pending restarts (see superviseCrash).
	restarts sync.WaitGroup
	// tasks tracks the goroutines the host starts on the side (run loops, stopping compromised
	// instances), so Shutdown can wait for them.
	tasks sync.WaitGroup

	// spares are the shims started ahead (Config.SpareShims).
	spares *shimPool
	// compiles are the compiles under way, by artefact path (compileClaims).
	compiles compileClaims

	mu        sync.Mutex
	instances []*Instance // in load order
	closed    bool
	// pending are the instances loading to replace a listed one (Reload), until they do.
	pending []*Instance
	// replacing serialises what replaces a capsule's instance (Reload, restarts), per capsule.
	replacing capsuleLocks

	// sock is the CLI socket (STATE/run/system.sock), bound when the first capsule that declares
	// net_bind loads (cliSocket) and closed by Shutdown.
	sockMu     sync.Mutex
	sock       *syssock.Server
	sockClosed bool
}

// New prepares a host: the module cache under cfg.StateDir and a private runtime directory for
// the shims' sockets.
func New(cfg Config) (*Host, error) {
	if cfg.Shim == nil {
		return nil, errors.New("host: no shim configured")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.LogLevel == hclog.NoLevel {
		cfg.LogLevel = hclog.Info
	}
	if cfg.Workspace == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("host: no workspace: %w", err)
		}
		cfg.Workspace = wd
	}
	if cfg.ApprovalTimeout <= 0 {
		cfg.ApprovalTimeout = DefaultApprovalTimeout
	}
	if cfg.SpareShims == 0 {
		cfg.SpareShims = DefaultSpareShims
	}
	if cfg.PassEnv == nil {
		cfg.PassEnv = process.HostPassEnv()
	}
	cache, err := OpenModuleCache(ModuleCacheDir(cfg.StateDir))
	if err != nil {
		return nil, err
	}
	runDir, runLock, err := runDirFor(cfg.Sandbox)
	if err != nil {
		return nil, err
	}
	for _, dir := range sweepRunDirs(filepath.Dir(runDir)) {
		cfg.Logger.Info("removed the runtime directory of a host that is gone", "path", dir)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, cache: cache, runDir: runDir, runLock: runLock, kv: kvstore.NewLazy(cfg.StateDir), metrics: metrics.NewRecorder()}
	h.approvals = newApprovals(h, cfg.ApprovalTimeout)
	h.dispatch = newDispatcher(h)
	h.bus = bus.New(bus.Options{Observer: h.dispatch.observe})
	h.closing, h.stopRestarts = context.WithCancel(context.Background())
	h.spares = newShimPool(h, cfg.SpareShims)
	h.startSpawner()
	return h, nil
}

// RuntimeDir is the host's private (0700) directory for sockets, removed at Shutdown. The CLI
// points the host process's TMPDIR at it, so the sockets go-plugin's broker opens for the host's
// services are private too.
func (h *Host) RuntimeDir() string { return h.runDir }

// Workspace is the directory capsules work in (Config.Workspace).
func (h *Host) Workspace() string { return h.cfg.Workspace }

// Cache is the host's compiled-module cache.
func (h *Host) Cache() *ModuleCache { return h.cache }

// Instances returns the loaded instances in load order.
func (h *Host) Instances() []*Instance {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Instance(nil), h.instances...)
}

// MaxInputBytes is the largest input of one call: 10 MiB.
const MaxInputBytes = shared.MaxPayloadBytes

// LoadOptions are the operator's choices for one load.
type LoadOptions struct {
	// Config are the operator's explicit [env] values for this load (astrid-host call --config):
	// they win over the values saved with `astrid-host config` and over the [env] defaults in
	// what the guest reads with config_get and astrid_get_config (see envconfig.Resolve). Keys
	// that are not [env] keys reach the guest too.
	Config map[string]string
	// AllowHosts adds hosts the capsule's HTTP requests may reach, beyond [capabilities] net
	// (astrid-host call --allow-host, for a bare .wasm).
	AllowHosts []string
	// RunLoop starts the capsule's run export in the background once it is loaded, if it has
	// one (astrid-host run does; astrid-host call, which calls one export, does not).
	RunLoop bool
	// Installed is the meta.json of a capsule loaded from the store (package store): its module
	// is read once, must hash to Installed.WasmHash, or the load is refused with
	// store.VerifyModule's error, and those same bytes are what is compiled or pick the cached
	// artefact. Nil for a development capsule (a directory outside the store), loaded
	// unverified and logged as such; a capsule whose directory is in the host's store is
	// verified even when Installed is nil (its meta.json is read when it is first loaded, and
	// its restarts are verified against that).
	Installed *store.Meta
	// Lifecycle is the install or upgrade hook this instance is loaded for (RunLifecycle), the
	// zero value for any other load. Host functions that behave differently during a lifecycle
	// hook (upstream's elicit, which asks the operator) read it with Instance.Lifecycle.
	Lifecycle LifecyclePhase
	// CallTimeout, when positive, replaces the capsule's [limits] call_timeout for this
	// instance: its start function, its _initialize and every call that sets no time limit of
	// its own run under it (astrid-host call --timeout).
	CallTimeout time.Duration
}

// callTimeout is the time limit of the instance's calls that set none of their own.
func (o LoadOptions) callTimeout(m *manifest.Manifest) time.Duration {
	if o.CallTimeout > 0 {
		return o.CallTimeout
	}
	return m.Limits.CallTimeout
}

// LoadResult tells how a capsule was loaded.
type LoadResult struct {
	// Compiled is true when the module was compiled for this load; false when the cached artefact
	// was used.
	Compiled bool
	// Took is the time from launching the shim to the capsule being Ready.
	Took time.Duration
}

// Load starts a shim for the capsule described by m and loads its module. The instance is
// returned even when loading fails, in state Failed with the reason; the error says the same.
func (h *Host) Load(ctx context.Context, m *manifest.Manifest, opts LoadOptions) (*Instance, LoadResult, error) {
	return h.loadInstance(ctx, m, opts, nil)
}

// LoadOutcome is what LoadAll did with one capsule: the instance (nil if none was started, when
// the host or ctx was stopping) and Load's result and error.
type LoadOutcome struct {
	Instance *Instance
	Result   LoadResult
	Err      error
}

// loadConcurrency is how many capsules LoadAll loads at once: the number of CPUs, and at least
// 4. Most of a load is waiting (for a shim to start, for the shim's answers); compiling uses
// every core wasmtime is given, and its [limits] compile_timeout bounds it.
func loadConcurrency() int { return max(runtime.NumCPU(), 4) }

// LoadAll loads the capsules of ms as Load does, loadConcurrency at a time, so that a capsule
// that is slow to compile or to initialise holds up no other. What depends on order stays in the
// order of ms: instances are added to the host (Instances, and so `status` and Shutdown, which
// stops them newest first) and their astrid.v1.capsule.loading events are published in that
// order; ready and failed events follow as each load ends. outcomes[k] is for ms[k]. Once ctx
// ends no further load starts (those get ctx's error), and the ones under way end early.
// Boot is LoadAll in dependency order, uplinks first, waiting for readiness.
func (h *Host) LoadAll(ctx context.Context, ms []*manifest.Manifest, opts LoadOptions) []LoadOutcome {
	caps := make([]Capsule, len(ms))
	order := make([]int, len(ms))
	for k, m := range ms {
		caps[k] = Capsule{Manifest: m, Options: opts}
		order[k] = k
	}
	out := make([]LoadOutcome, len(ms))
	h.schedule(ctx, caps, order, make([][]int, len(ms)), false, out, make([]bool, len(ms)), nil)
	return out
}

// loadInstance loads a new instance of m. A restart passes the instance it replaces (in the
// host's list, and in the restart count it carries on); a first load passes nil.
func (h *Host) loadInstance(ctx context.Context, m *manifest.Manifest, opts LoadOptions, replaces *Instance) (*Instance, LoadResult, error) {
	inst, err := h.addInstance(m, opts, replaces)
	if err != nil {
		return nil, LoadResult{}, err
	}
	res, err := h.finishLoad(ctx, inst, opts)
	return inst, res, err
}

// addInstance adds a new instance of m, Loading, to the host's list (in place of replaces, if
// given) and announces it.
func (h *Host) addInstance(m *manifest.Manifest, opts LoadOptions, replaces *Instance) (*Instance, error) {
	inst := h.newInstance(m, opts)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errors.New("host: shutting down")
	}
	if replaces != nil && replaces.unloaded.Load() {
		h.mu.Unlock()
		return nil, fmt.Errorf("capsule %s was unloaded", m.ID())
	}
	if replaces != nil {
		inst.restarts = replaces.restarts + 1
		inst.reloads = replaces.reloads
		inst.lastFailure = replaces.Status().LastFailure
		if k := slices.Index(h.instances, replaces); k >= 0 {
			h.instances[k] = inst
		} else {
			h.instances = append(h.instances, inst) // never lose track of an instance
		}
	} else {
		h.instances = append(h.instances, inst)
	}
	h.mu.Unlock()
	inst.announce()
	return inst, nil
}

// newInstance makes a new instance of m, Loading, listed nowhere yet.
func (h *Host) newInstance(m *manifest.Manifest, opts LoadOptions) *Instance {
	opts = h.storeOptions(m, opts)
	return &Instance{manifest: m, log: h.log.Named(m.ID()), state: StateLoading, opts: opts, host: h, ipc: newInstanceIPC(m), ready: make(chan struct{}), calls: make(chan struct{}, 1)}
}

// announce logs and publishes that a new instance is loading.
func (i *Instance) announce() {
	i.log.Info("capsule state", "state", StateLoading, "dir", i.manifest.Dir, "source", i.opts.source())
	i.host.publishEvent(TopicCapsulePrefix+StateLoading.String(), capsuleEvent{CapsuleID: i.ID(), Instance: i.ipc.sourceID, State: StateLoading.String()})
}

// finishLoad loads an added instance's module and makes it Ready, or Failed with the reason.
func (h *Host) finishLoad(ctx context.Context, inst *Instance, opts LoadOptions) (LoadResult, error) {
	m := inst.manifest
	opts = inst.opts // as addInstance completed them
	start := time.Now()
	res, err := h.load(ctx, inst, opts)
	res.Took = time.Since(start)
	h.spares.refill(shimKeyOf(m)) // for the next capsule like this one
	if err != nil {
		err = fmt.Errorf("load capsule %s: %w", m.ID(), err)
		inst.setState(StateFailed, err.Error())
		if inst.proc != nil {
			// A shim that overran its compile deadline is still compiling: kill it at once.
			inst.stop(ctx, errors.Is(err, errCompileTimeout))
		}
		return res, err
	}
	inst.setState(StateReady, "")
	inst.log.Info("capsule loaded", "pid", inst.Pid(), "exports", inst.Exports(), "compiled", res.Compiled, "took", res.Took, "sandbox", inst.proc.sandbox, "integrity", opts.integrity())
	if len(m.Interceptors) > 0 && !inst.runExport && !inst.dispatched() {
		inst.log.Warn("the capsule declares [[interceptor]]s but exports neither run nor " + HookExport + ": they never run")
	}
	h.background(func() { inst.monitorHealth(h.cfg.HealthInterval, h.cfg.HealthTimeout) })
	if opts.RunLoop && slices.Contains(inst.Exports(), "run") {
		inst.startRunLoop()
	}
	return res, nil
}

func (h *Host) load(ctx context.Context, inst *Instance, opts LoadOptions) (LoadResult, error) {
	m := inst.manifest
	config, err := h.guestConfig(inst, opts)
	if err != nil {
		return LoadResult{}, err
	}
	// An installed capsule's module is read once: the bytes verified are the bytes that select
	// the cached artefact, are scanned and are compiled. A development capsule's digest may come
	// from the cache's index, and its module is read only when it has to be compiled.
	var verified []byte
	var sum string
	if opts.Installed != nil {
		verified, sum, err = readVerifiedModule(m, opts.Installed)
	} else {
		sum, err = h.cache.Digest(m.WasmPath())
	}
	if err != nil {
		return LoadResult{}, err
	}
	if len(m.Capabilities.NetBind) > 0 {
		// The socket and its token exist before the capsule can accept, as upstream binds them
		// at boot; a host whose capsules never ask for it never holds it.
		if _, err := h.cliSocket(); err != nil {
			return LoadResult{}, fmt.Errorf("[capabilities] net_bind: %w", err)
		}
	}
	key := shimKeyOf(m)
	kernelPath := h.cache.KernelPath(h.cfg.Shim.SHA256, key.fuel)
	artefact := h.cache.Path(sum, h.cfg.Shim.SHA256, key.fuel)
	proc, err := h.launchShim(ctx, key, inst.guestLog().relay(), artefact)
	if err != nil {
		return LoadResult{}, err
	}
	defer proc.releaseClaim() // a load that fails before it compiles holds up no other
	inst.proc = proc
	inst.pid.Store(int64(proc.pid))
	inst.watched = make(chan struct{})
	go inst.watchExit()

	info, err := proc.shim.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return LoadResult{}, fmt.Errorf("shim info: %w", err)
	}
	if len(info.KernelArtefact) > 0 {
		if err := h.cache.Store(kernelPath, info.KernelArtefact); err != nil {
			inst.log.Warn("cannot cache the kernel artefact", "error", err)
		}
	}
	// A run-loop capsule reads its [[interceptor]] events from subscriptions made for it before
	// it loads; the others' interceptors are dispatched to astrid_hook_trigger once they are
	// Ready. Which one it is, the module's exports say, read here before the shim loads it.
	// A module the scan cannot read goes on to the shim, whose compiler says what is wrong with
	// it; should the shim accept it, the load fails below with the scan's error.
	runExport, scanErr := scanRunExport(m.WasmPath(), verified)
	inst.runExport = runExport
	interceptors, err := inst.ipc.subscribeInterceptors(h.bus, m.Interceptors, runExport)
	if err != nil {
		return LoadResult{}, err
	}
	var res LoadResult
	compile := func() error {
		wasm := verified
		if wasm == nil {
			// Hash the bytes sent to the shim: the artefact must match its key even if the
			// file changed since Digest looked at it.
			var got string
			if wasm, got, err = readModule(m.WasmPath()); err != nil {
				return err
			}
			if got != sum {
				return fmt.Errorf("module %s changed while it was being loaded; try again", m.WasmPath())
			}
		}
		if err := h.compile(ctx, proc, wasm, artefact, m.Limits.CompileTimeout); err != nil {
			return err
		}
		res.Compiled = true
		return nil
	}
	if !proc.artefactSent() {
		err := compile()
		proc.releaseClaim() // the others loading this module look in the cache again
		if err != nil {
			return res, err
		}
	}
	req := &pb.LoadRequest{
		CapsuleId:          m.ID(),
		ArtefactPath:       artefact,
		MemoryLimitBytes:   m.Limits.Memory,
		CallTimeoutMs:      uint64(opts.callTimeout(m).Milliseconds()),
		Fuel:               m.Limits.Fuel,
		HostServicesId:     proc.serveHostServices(inst),
		Config:             config,
		LogLevel:           capsuleLogLevel(h.cfg.LogLevel),
		IpcPublish:         m.Capabilities.IPCPublish,
		IpcSubscribe:       m.Capabilities.IPCSubscribe,
		IpcBytesPerSec:     m.Limits.IPCBytesPerSec,
		InterceptorHandles: interceptors,
	}
	resp, err := proc.shim.Load(ctx, req)
	if status.Code(err) == codes.DataLoss && !res.Compiled {
		// A cached artefact this shim cannot load (corrupt, or from another build): replace it.
		inst.log.Warn("cached artefact unusable; compiling again", "artefact", artefact, "error", status.Convert(err).Message())
		if err := h.cache.Remove(artefact); err != nil {
			return res, err
		}
		if err := compile(); err != nil {
			return res, err
		}
		resp, err = proc.shim.Load(ctx, req)
	}
	if err != nil {
		return res, errors.New(status.Convert(err).Message())
	}
	switch callableRun := slices.Contains(resp.Exports, "run"); {
	case scanErr != nil:
		return res, scanErr
	case callableRun && !runExport:
		// The module changed after it was read: its interceptors would be dispatched to a
		// capsule whose run loop holds its Store.
		return res, fmt.Errorf("module %s changed while it was being loaded (it now exports run); try again", m.WasmPath())
	case runExport && !callableRun:
		inst.log.Warn("the module exports a function run that cannot be called (a run loop takes no parameters): it is a run-loop capsule whose run loop never starts")
	}
	inst.mu.Lock()
	inst.exports = resp.Exports
	inst.mu.Unlock()
	if fn := usesStore(resp.Imports); fn != "" {
		// Fail fast: a capsule that cannot have the host's database (another host holds it)
		// does not become Ready only to fail its first call.
		if _, err := h.kv.Store(); err != nil {
			return res, fmt.Errorf("the capsule imports %s: %w", fn, err)
		}
	}
	return res, nil
}

// scanRunExport reports whether the module exports a function named run, reading no more of it
// than its section headers and its export section: from wasm when the module was read already
// (an installed capsule's verified bytes), else from the file at path.
func scanRunExport(path string, wasm []byte) (bool, error) {
	var r io.Reader = bytes.NewReader(wasm)
	if wasm == nil {
		f, _, err := safefile.Open(path, shared.MaxModuleBytes)
		if err != nil {
			return false, fmt.Errorf("read module: %w", err)
		}
		defer f.Close()
		r = f
	}
	run, err := wasmscan.HasFuncExport(r, "run")
	if err != nil {
		return false, fmt.Errorf("read the exports of module %s: %w", path, err)
	}
	return run, nil
}

// capsuleLogLevel maps an hclog level to the guest's scale: 0 trace … 4 error, 5 off.
func capsuleLogLevel(l hclog.Level) int32 {
	switch {
	case l == hclog.NoLevel:
		return int32(hclog.Info - hclog.Trace)
	case l >= hclog.Off:
		return 5
	default:
		return int32(l - hclog.Trace)
	}
}

// errCompileTimeout marks a load whose compilation overran [limits] compile_timeout.
var errCompileTimeout = errors.New("compile deadline passed")

// compile has the (fresh) shim compile wasm within limit ([limits] compile_timeout) and stores
// the artefact in the cache. Compiling cannot be interrupted inside the shim, so at the deadline
// the call ends with an error wrapping errCompileTimeout, and the caller kills the shim.
func (h *Host) compile(ctx context.Context, proc *shimProcess, wasm []byte, artefact string, limit time.Duration) error {
	// A watchdog rather than a gRPC deadline: a deadline would travel to the shim, which could
	// end the stream a moment before the host's own timer says why.
	cctx, cancel := context.WithCancelCause(ctx)
	watchdog := time.AfterFunc(limit, func() { cancel(errCompileTimeout) })
	defer func() {
		watchdog.Stop()
		cancel(nil)
	}()
	out, err := h.compileIn(cctx, proc, wasm)
	if err != nil && errors.Is(context.Cause(cctx), errCompileTimeout) {
		return fmt.Errorf("compiling its module (%d bytes) did not finish within its deadline of %s ([limits] compile_timeout); the shim compiling it was killed: %w",
			len(wasm), limit, errCompileTimeout)
	}
	if err != nil {
		return err
	}
	return h.cache.Store(artefact, out)
}

// compileIn streams wasm to the shim's Compile and collects the artefact.
func (h *Host) compileIn(ctx context.Context, proc *shimProcess, wasm []byte) ([]byte, error) {
	stream, err := proc.shim.Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	if err := shared.SendChunks(stream.Send, wasm); err != nil {
		return nil, fmt.Errorf("compile: send module: %w", err)
	}
	if err := stream.CloseSend(); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	out, err := shared.RecvChunks(stream.Recv, MaxArtefactBytes)
	if errors.Is(err, shared.ErrTooLarge) {
		return nil, fmt.Errorf("compile: the artefact is larger than %d bytes (1 GiB)", MaxArtefactBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("compile: %s", status.Convert(err).Message())
	}
	return out, nil
}

// readModule reads a capsule's module and hashes it. The host hashes the bytes it sends to the
// shim, so the cache key always matches what was compiled.
func readModule(path string) ([]byte, string, error) {
	// The capsule directory decides what path is: a regular file of at most 256 MiB, or refused
	// without blocking or reading more.
	wasm, err := safefile.ReadFile(path, shared.MaxModuleBytes)
	if err != nil {
		return nil, "", fmt.Errorf("read module: %w", err)
	}
	sum := sha256.Sum256(wasm)
	return wasm, hex.EncodeToString(sum[:]), nil
}

// background runs f on a goroutine the host waits for at Shutdown.
func (h *Host) background(f func()) {
	h.tasks.Add(1)
	go func() {
		defer h.tasks.Done()
		f()
	}()
}

// Shutdown stops every instance, newest first, and removes the runtime directory. Nothing the
// host started is left running when it returns.
func (h *Host) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	// No interceptor runs from now on; those running end with their instances.
	h.dispatch.close()
	// Pending restarts give up, and one that is loading fails and cleans up, before the
	// instances are stopped, so none is added behind Shutdown's back.
	h.stopRestarts()
	h.restarts.Wait()
	h.mu.Lock()
	insts := append([]*Instance(nil), h.instances...)
	h.mu.Unlock()
	for k := len(insts) - 1; k >= 0; k-- {
		insts[k].Stop(ctx)
	}
	h.dispatch.wait()
	h.tasks.Wait()
	h.spares.close()
	h.spawner.close()
	h.cache.Close()
	h.closeCLISocket()
	h.leaveBus()
	if err := h.kv.Close(); err != nil {
		h.log.Error("closing the KV store", "path", h.kv.Path(), "error", err)
	}
	h.RemoveRuntimeDir()
}

// RemoveRuntimeDir removes the runtime directory (every shim's socket directory), even while
// shims are still being started into it; a process that exits without Shutdown (on a second
// signal, say) calls it last so that nothing is left in the temporary directory. An error is
// logged: there is nothing more a caller about to exit could do with it.
func (h *Host) RemoveRuntimeDir() {
	if err := removeRunDir(h.runDir); err != nil {
		h.log.Error("runtime directory left behind", "error", err)
	}
	h.runLock.Close() // after the removal: the next host to start sweeps what was left behind
}
