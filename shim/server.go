package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
)

// Server is the shim's side of the protocol: it owns the Store and serves the Shim service.
type Server struct {
	pb.UnimplementedShimServer

	log    hclog.Logger
	engine *Engine
	broker shared.Broker

	// storeLock is held by every RPC that touches the Store. It is a channel so that waiting for it
	// respects the caller's deadline (pongLater relies on that).
	storeLock chan struct{}
	// Guarded by storeLock.
	module *wasmtime.Module
	guest  *guest // nil after a trap, until the next call instantiates afresh
	env    *env

	// unloading ends every call (and blocking host function) when the capsule unloads.
	unloading context.Context
	unload    context.CancelCauseFunc

	// artefacts is the channel on which the host sends the capsule's compiled module once it
	// has checked it (shared.ReceiveArtefact), nil if it has none; compiled is what this shim's
	// Compile produced. Load uses compiled first, then what the host sent, and releases both.
	// Guarded by storeLock (Compile takes it to set compiled).
	artefacts *os.File
	compiled  []byte

	// calls is the call connection: export calls come in on it, host calls go out on it.
	calls *callwire.ShimEnd

	loaded    atomic.Bool // a module was loaded: Compile is refused from then on
	closing   atomic.Bool
	callCount atomic.Uint64
	inCall    atomic.Bool // a guest call holds the Store

	idle idleMemory // hands an idle shim's garbage back to the system (ping)
}

// NewServer builds the shim's service; broker dials the host's services (go-plugin's broker protocol).
// artefacts is the shim's end of the channel on which the host sends the capsule's checked
// compiled module (shared.EnvShimArtefactSocket; nil if there is none): Load deserialises what
// the host sent unless the host has this shim Compile the module first. calls is the shim's end
// of its call connection (callwire.EnvShimCallsFD): ServeCalls serves it.
func NewServer(log hclog.Logger, engine *Engine, broker shared.Broker, artefacts *os.File, calls *callwire.ShimEnd) *Server {
	s := &Server{log: log, engine: engine, broker: broker, artefacts: artefacts, calls: calls, storeLock: make(chan struct{}, 1)}
	logs := &logSink{local: log, calls: calls}
	s.env = &env{logs: logs, stdio: newStdio(logs.add), vars: newVarStore(), calls: calls}
	s.unloading, s.unload = context.WithCancelCause(context.Background())
	if calls != nil {
		calls.HandlePings(s.ping) // before ServeCalls reads
	}
	return s
}

func (s *Server) lock(ctx context.Context) error {
	select {
	case s.storeLock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return status.Errorf(codes.DeadlineExceeded, "the capsule's Store is busy: %v", ctx.Err())
	}
}

func (s *Server) unlock() { <-s.storeLock }

// Info reports the wasmtime version and engine configuration, which key the artefact cache.
func (s *Server) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{WasmtimeVersion: WasmtimeVersion(), EngineConfig: s.engine.Config(), Pid: int32(os.Getpid()),
		KernelArtefact: s.engine.KernelArtefact()}, nil
}

// Compile receives a module, compiles it and streams the artefact back. It is refused once a guest
// has been loaded: artefacts are trusted native code, and must not come from a process that has
// run guest code.
func (s *Server) Compile(stream pb.Shim_CompileServer) error {
	if s.loaded.Load() {
		return status.Error(codes.FailedPrecondition, "this shim has loaded a guest and no longer compiles modules")
	}
	wasm, err := shared.RecvChunks(stream.Recv, shared.MaxModuleBytes)
	if errors.Is(err, shared.ErrTooLarge) {
		return status.Errorf(codes.InvalidArgument, "module is larger than %d bytes (256 MiB)", shared.MaxModuleBytes)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	art, err := s.engine.Compile(wasm)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	s.log.Debug("compiled module", "wasm_bytes", len(wasm), "artefact_bytes", len(art), "took", time.Since(start))
	// Load uses this shim's own output: it needs no artefact from the host, which has only just
	// received it.
	if err := s.lock(stream.Context()); err != nil {
		return err
	}
	s.compiled = art
	s.unlock()
	return shared.SendChunks(stream.Send, art)
}

// Load connects to the host's services, deserialises the artefact and instantiates the guest.
func (s *Server) Load(ctx context.Context, req *pb.LoadRequest) (*pb.LoadResponse, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	if s.module != nil {
		return nil, status.Error(codes.FailedPrecondition, "a guest is already loaded in this shim")
	}
	if req.LogLevel < 0 || req.LogLevel > LogLevelOff {
		return nil, status.Errorf(codes.InvalidArgument, "log level %d: want 0 (trace) to %d (off)", req.LogLevel, LogLevelOff)
	}
	limits := limitsFor(req.MemoryLimitBytes)
	if err := limits.check(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.env.cfg = guestConfig{
		capsuleID:   req.CapsuleId,
		limits:      limits,
		callTimeout: time.Duration(req.CallTimeoutMs) * time.Millisecond,
		fuel:        req.Fuel,
		config:      req.Config,
		logLevel:    req.LogLevel,
	}
	s.env.logs.level = req.LogLevel
	if s.env.cfg.fuel > 0 && !s.engine.opts.Fuel {
		return nil, status.Error(codes.FailedPrecondition, "[limits] fuel is set but this shim was started without fuel metering")
	}
	if s.env.host == nil {
		s.env.host = dialHost(s.broker, req.HostServicesId)
	}
	ipc, err := newIPCState(req, s.calls)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.env.ipc = ipc
	module, err := s.deserialize(req.ArtefactPath)
	if err != nil {
		// Nothing ran yet: the host may still have this shim compile the module afresh.
		return nil, status.Error(codes.DataLoss, err.Error())
	}
	s.loaded.Store(true)
	g, err := s.engine.instantiate(s.unloading, module, s.env)
	s.env.logs.flush()
	if err != nil {
		module.Close()
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.module, s.guest = module, g
	_, initialized := exportNames(module)["_initialize"]
	return &pb.LoadResponse{Exports: g.exports, Initialized: initialized, Imports: userImports(module)}, nil
}

// deserialize loads the capsule's module: the one this shim compiled, else the artefact the host
// checked and sent. Either way both are released: a module that fails to load is compiled again
// by this shim, and the host loads again.
func (s *Server) deserialize(name string) (*wasmtime.Module, error) {
	defer func() {
		if s.artefacts != nil {
			s.artefacts.Close()
		}
		s.artefacts, s.compiled = nil, nil
	}()
	if s.compiled != nil {
		return s.engine.Deserialize(s.compiled, name)
	}
	if s.artefacts != nil {
		a, err := shared.ReceiveArtefact(s.artefacts)
		if err != nil {
			return nil, fmt.Errorf("artefact %s: %w", name, err)
		}
		if a != nil {
			defer a.Close()
			return s.engine.DeserializeInherited(a, name)
		}
	}
	return nil, fmt.Errorf("no artefact for %s: the host sent none and had this shim compile none", name)
}

// ServeCalls runs the host's export calls arriving on the call connection until it ends; the
// shim's main runs it once the server is built.
func (s *Server) ServeCalls() error {
	if s.calls == nil {
		return errors.New("the shim has no call connection")
	}
	return s.calls.Serve(s.Invoke)
}

// cancelled is the answer to a call made while (or waiting while) the capsule unloads.
var cancelled = &pb.GuestError{Kind: pb.GuestError_CANCELLED, Message: "the capsule is unloading"}

// Invoke calls one export (a Call frame of the call connection) and replies with its answer
// while it still holds the Store: the output is the kernel's memory, sent without a copy of its
// own. A call waits for the Store (a run loop may hold it) until the capsule unloads.
func (s *Server) Invoke(req *pb.InvokeRequest, reply func(*pb.InvokeResponse)) {
	if err := shared.CheckInput(len(req.Input)); err != nil {
		reply(&pb.InvokeResponse{Error: &pb.GuestError{Kind: pb.GuestError_GUEST_ERROR, Message: err.Error()}})
		return
	}
	if err := s.lock(s.unloading); err != nil {
		reply(&pb.InvokeResponse{Error: cancelled})
		return
	}
	defer s.unlock()
	reply(s.invokeLocked(req))
}

// invokeLocked runs a call for Invoke, which holds the Store. A call that trapped leaves the
// Store behind: the next call runs in a fresh instantiation.
func (s *Server) invokeLocked(req *pb.InvokeRequest) *pb.InvokeResponse {
	s.inCall.Store(true)
	defer s.inCall.Store(false)
	s.idle.calling()
	if s.closing.Load() {
		return &pb.InvokeResponse{Error: cancelled}
	}
	if s.module == nil {
		return &pb.InvokeResponse{Error: &pb.GuestError{Kind: pb.GuestError_NOT_LOADED, Message: "no guest is loaded in this shim"}}
	}
	if s.guest == nil {
		g, err := s.engine.instantiate(s.unloading, s.module, s.env)
		s.env.logs.flush()
		if err != nil {
			return &pb.InvokeResponse{Error: &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("re-instantiate the capsule after a trap: %v", err)}}
		}
		s.guest = g
	}
	timeout := s.env.cfg.callTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	if req.NoDeadline {
		timeout = 0
	}
	s.env.call.caller = req.Caller
	out, gerr, trapped := s.engine.call(s.unloading, s.guest, s.env, req.Export, req.Input, timeout)
	s.env.call.caller = nil
	// What the guest published reaches the bus before its call is answered.
	if err := s.env.ipc.flush(); err != nil && gerr == nil {
		out, gerr = nil, &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("call to %s: %v", req.Export, err)}
	}
	if trapped {
		s.guest.close()
		s.guest = nil
	}
	if gerr != nil {
		// The stderr the guest wrote in the call (a crash report) is shown under its error.
		gerr.Stderr = s.env.logs.takeStderr()
	}
	s.env.logs.flush()
	s.callCount.Add(1)
	return &pb.InvokeResponse{Output: out, Error: gerr}
}

// ping answers the host's health check, a Ping frame on the call connection, on the goroutine
// that read it, without waiting and without allocating (see idleMemory): at once with busy
// while a guest call holds the Store (the call's deadline watches the guest); otherwise once it
// holds the Store, proving the Store is not wedged outside a guest call. When the Store is held
// outside a guest call (a call about to start or just answered, a shutdown), a goroutine of its
// own waits for it (pongLater), as long as the host's check may wait.
func (s *Server) ping(id uint64) (callwire.Health, bool) {
	if s.inCall.Load() {
		return callwire.Health{Loaded: true, Calls: s.callCount.Load(), Busy: true}, true
	}
	select {
	case s.storeLock <- struct{}{}:
	default:
		go s.pongLater(id)
		return callwire.Health{}, false
	}
	h := callwire.Health{Loaded: s.module != nil, Calls: s.callCount.Load()}
	s.unlock()
	s.idle.check(h.Calls)
	return h, true
}

// pongWait is how long pongLater waits for the Store: longer than the host's check waits for
// the answer (host.Config.HealthTimeout, 2 s by default), after which the host has given up.
const pongWait = time.Minute

// pongLater answers the Ping id once it holds the Store, unless the capsule unloads or pongWait
// passes first (the host has then stopped waiting: a Store held that long outside a guest call
// is wedged, and the host stops the shim).
func (s *Server) pongLater(id uint64) {
	ctx, cancel := context.WithTimeout(s.unloading, pongWait)
	defer cancel()
	if s.inCall.Load() {
		_ = s.calls.Pong(id, callwire.Health{Loaded: true, Calls: s.callCount.Load(), Busy: true})
		return
	}
	if err := s.lock(ctx); err != nil {
		return
	}
	h := callwire.Health{Loaded: s.module != nil, Calls: s.callCount.Load()}
	s.unlock()
	s.idle.check(h.Calls)
	_ = s.calls.Pong(id, h)
}

// Shutdown interrupts a running call, drops the Store and flushes the logs. go-plugin's own
// shutdown then stops the server and the process exits.
func (s *Server) Shutdown(ctx context.Context, _ *pb.ShutdownRequest) (*pb.ShutdownResponse, error) {
	s.closing.Store(true)
	s.unload(errUnloading) // wakes host functions that block (sleeps, HTTP)
	s.engine.interrupt()   // traps a guest that computes
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	if s.guest != nil {
		s.guest.close()
		s.guest = nil
	}
	if s.module != nil {
		s.module.Close()
		s.module = nil
	}
	if s.env.ipc != nil {
		s.env.ipc.stop()
	}
	s.env.logs.flush()
	s.env.host.close()
	return &pb.ShutdownResponse{}, nil
}

func exportNames(m *wasmtime.Module) map[string]struct{} {
	names := map[string]struct{}{}
	for _, e := range m.Exports() {
		names[e.Name()] = struct{}{}
	}
	return names
}
