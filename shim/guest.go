package shim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// guestConfig is what Load tells the shim about the capsule.
type guestConfig struct {
	capsuleID   string
	limits      storeLimits   // [limits] memory, shared out in the Store
	callTimeout time.Duration // 0: no deadline
	fuel        uint64        // 0: no fuel metering
	config      map[string]string
	logLevel    int32 // 0 trace … 4 error, LogLevelOff
}

// guest is one instantiation of the capsule's module: a Store with the kernel and the guest in it.
// A guest that trapped is thrown away and instantiated afresh, never reused.
type guest struct {
	store    *wasmtime.Store
	kernel   *kernel.Kernel
	instance *wasmtime.Instance
	exports  []string // callable exports, sorted
	// funcs holds the callable exports, looked up once: each lookup and signature check is a
	// handful of cgo calls and finalizers that would otherwise be paid by every call.
	funcs map[string]*wasmtime.Func
}

// instantiate builds a fresh Store for module: the Store's limits (see storeLimits), WASI with no
// ambient authority (no preopens or arguments, an environment of GOMEMLIMIT only (see
// storeLimits.goMemLimit); stdout and stderr captured; a
// cancellable poll_oneoff; a proc_exit that reports any status), the kernel and the Go host
// functions, and then the guest. The guest's start function, if it has one, and then its runtime
// initialisation (_initialize and the like) run under the call time limit and fuel, as a call does.
func (e *Engine) instantiate(ctx context.Context, module *wasmtime.Module, v *env) (*guest, error) {
	store := wasmtime.NewStore(e.engine)
	v.cfg.limits.apply(store)
	wasi := wasmtime.NewWasiConfig()
	wasi.SetEnv([]string{"GOMEMLIMIT"}, []string{v.cfg.limits.goMemLimit()})
	store.SetWasi(wasi)
	g := &guest{store: store}
	ok := false
	defer func() {
		if !ok {
			store.Close()
		}
	}()

	k, err := kernel.New(store, e.kernel, v.cfg.limits.kernelMemory)
	if err != nil {
		return nil, fmt.Errorf("instantiate the kernel: %w", err)
	}
	g.kernel = k
	linker := wasmtime.NewLinker(e.engine)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		return nil, fmt.Errorf("define WASI: %w", err)
	}
	linker.AllowShadowing(true)
	if err := v.stdio.define(linker); err != nil {
		return nil, fmt.Errorf("define fd_write: %w", err)
	}
	if err := v.definePollOneoff(linker); err != nil {
		return nil, fmt.Errorf("define poll_oneoff: %w", err)
	}
	if err := v.defineProcExit(linker); err != nil {
		return nil, fmt.Errorf("define proc_exit: %w", err)
	}
	if err := k.Define(store, linker); err != nil {
		return nil, fmt.Errorf("define the kernel: %w", err)
	}
	imported := importedNames(module)
	copies := importsCopies(imported)
	if copies {
		if err := k.DefineCopies(store, linker, userModule); err != nil {
			return nil, fmt.Errorf("define the kernel: %w", err)
		}
	}
	if err := v.define(linker, k, imported); err != nil {
		return nil, err
	}
	if err := checkImports(module, linker, store, v.providedImports()); err != nil {
		return nil, err
	}
	var inst *wasmtime.Instance
	if err := e.runInit(ctx, g, v, startFunction, func() error {
		inst, err = linker.Instantiate(store, module)
		return err
	}); err != nil {
		return nil, err
	}
	g.instance = inst
	if ext := inst.GetExport(store, kernel.GuestMemory); copies && ext != nil && ext.Memory() != nil {
		if err := k.BindGuest(store, ext.Memory()); err != nil {
			return nil, err
		}
	}
	g.exports = callableExports(module)
	g.funcs = make(map[string]*wasmtime.Func, len(g.exports))
	for _, name := range g.exports {
		g.funcs[name] = inst.GetFunc(store, name)
	}
	if err := e.initRuntime(ctx, g, v); err != nil {
		return nil, err
	}
	ok = true
	return g, nil
}

// startFunction names a module's start section in errors, where an export's name would be.
const startFunction = "the start function"

// runtimeInits are the exports that initialise a guest's language runtime, run once after
// instantiation as Extism does: a WASI reactor's _initialize, then a Haskell module's
// hs_init(0, 0); a command module without _initialize gets its __wasm_call_ctors. They are not
// callable by name.
var runtimeInits = map[string]bool{"_initialize": true, "__wasm_call_ctors": true}

// initRuntime runs the guest's runtime initialisation under the call time limit and fuel.
func (e *Engine) initRuntime(ctx context.Context, g *guest, v *env) error {
	type step struct {
		name string
		args []any
	}
	var steps []step
	if g.instance.GetFunc(g.store, "_initialize") != nil {
		steps = append(steps, step{name: "_initialize"})
	} else if g.instance.GetFunc(g.store, "__wasm_call_ctors") != nil {
		steps = append(steps, step{name: "__wasm_call_ctors"})
	}
	if f := g.instance.GetFunc(g.store, "hs_init"); f != nil && len(f.Type(g.store).Params()) == 2 {
		steps = append(steps, step{name: "hs_init", args: []any{int32(0), int32(0)}})
	}
	for _, st := range steps {
		f := g.instance.GetFunc(g.store, st.name)
		if len(f.Type(g.store).Params()) != len(st.args) {
			continue // not the runtime's initialiser, just a function by that name
		}
		if err := e.runInit(ctx, g, v, st.name, func() error { _, err := f.Call(g.store, st.args...); return err }); err != nil {
			return err
		}
	}
	return nil
}

// runInit runs one step of bringing a guest up (instantiation, with its start function, or a
// runtime initialiser) as a call runs: with the call time limit ([limits] call_timeout, or the
// operator's --timeout), a full tank of fuel, and the guest's stdio captured. A failure of the
// guest's code is classified as a call's would be; a refusal by the Store's limits says which.
func (e *Engine) runInit(ctx context.Context, g *guest, v *env, name string, f func() error) error {
	if v.cfg.fuel > 0 {
		if err := g.store.SetFuel(v.cfg.fuel); err != nil {
			return fmt.Errorf("set fuel: %w", err)
		}
	}
	v.stdio.beginCall()
	cause, err := e.runWithDeadline(ctx, v, g.store, v.cfg.callTimeout, f)
	v.stdio.flush()
	if err == nil {
		return nil
	}
	if name == startFunction && !ranGuestCode(err, cause, v) {
		return v.cfg.limits.instantiateError(err)
	}
	ge := classify(err, failure{export: name, timeout: v.cfg.callTimeout, cause: cause, exit: v.call.exit,
		limits: v.cfg.limits, memSize: g.memorySize(), stderr: v.stdio.notableStderr()})
	return errors.New(ge.Message)
}

// ranGuestCode reports whether err, from instantiating a module, came from running its start
// function (a trap, an interruption, proc_exit, or a host function's trap) rather than from
// linking it or from the Store's limits.
func ranGuestCode(err, cause error, v *env) bool {
	var trap *wasmtime.Trap
	return errors.As(err, &trap) || cause != nil || v.call.exit != nil ||
		strings.HasPrefix(err.Error(), "error while executing")
}

// close releases the Store at once rather than at the next garbage collection.
func (g *guest) close() { g.store.Close() }

// runWithDeadline runs f (a call into the guest) with a deadline. Every call runs with an epoch
// deadline of one tick, and the engine's epoch is only incremented by this call's timer (or by an
// unload), so the guest traps exactly when its time is up and an idle shim has no ticker. The
// call's context (v.call.ctx) ends at the same moment, for host functions that block. cause says
// why the call was interrupted, if it was.
func (e *Engine) runWithDeadline(parent context.Context, v *env, store *wasmtime.Store, timeout time.Duration, f func() error) (cause, err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	v.call = callState{ctx: ctx, caller: v.call.caller}
	store.SetEpochDeadline(1)
	if timeout <= 0 {
		err = f()
		return interruption(ctx), err
	}
	fired := make(chan struct{})
	t := time.AfterFunc(timeout, func() {
		cancel(errCallTimeout)
		e.engine.IncrementEpoch()
		close(fired)
	})
	err = f()
	if !t.Stop() {
		// The timer fired (or is firing): wait until its increment is done, so it cannot land in
		// the next call's deadline.
		<-fired
	}
	return interruption(ctx), err
}

// call runs export with input and returns its output or why it failed. trapped reports that the
// Store may be inconsistent and must not be used again. ctx ends when the capsule unloads.
func (e *Engine) call(ctx context.Context, g *guest, v *env, export string, input []byte, timeout time.Duration) (output []byte, gerr *pb.GuestError, trapped bool) {
	f := g.funcs[export]
	if f == nil {
		what := "does not exist"
		switch other := g.instance.GetFunc(g.store, export); {
		case other != nil && runtimeInits[export]:
			what = "runs once when the capsule loads and cannot be called by name"
		case other != nil:
			what = "has a signature other than () -> i32 or () -> ()"
		}
		return nil, &pb.GuestError{Kind: pb.GuestError_NO_SUCH_EXPORT,
			Message: fmt.Sprintf("export %q %s; the capsule's callable exports are: %s", export, what, listOrNone(g.exports))}, false
	}
	if err := g.kernel.BeginCall(g.store, input); err != nil {
		return nil, &pb.GuestError{Kind: pb.GuestError_OUT_OF_MEMORY, Message: fmt.Sprintf("call to %s: the %d-byte input does not fit in the kernel's share of the capsule's memory, %s (three sixteenths of [limits] memory, %s): %v",
			export, len(input), formatBytes(v.cfg.limits.kernelMemory), formatBytes(v.cfg.limits.total), err)}, false
	}
	if v.cfg.fuel > 0 {
		if err := g.store.SetFuel(v.cfg.fuel); err != nil {
			return nil, &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("set fuel: %v", err)}, false
		}
	}
	v.stdio.beginCall()
	var rc any
	cause, err := e.runWithDeadline(ctx, v, g.store, timeout, func() error {
		var err error
		rc, err = f.Call(g.store)
		return err
	})
	v.stdio.flush()
	if err != nil && v.call.exit != nil && *v.call.exit == 0 {
		err = nil // proc_exit(0) is a successful end of the call
	}
	if err != nil {
		return nil, classify(err, failure{export: export, timeout: timeout, cause: cause, exit: v.call.exit, limits: v.cfg.limits,
			memSize: g.memorySize(), stderr: v.stdio.notableStderr()}), true
	}
	out, msg, failed, kerr := g.kernel.OutputView(g.store) // sent before the Store runs again (Server.Invoke)
	switch {
	case kerr != nil:
		return nil, &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("call to %s: read its output: %v", export, kerr)}, false
	case failed:
		return nil, &pb.GuestError{Kind: pb.GuestError_GUEST_ERROR, Message: msg}, false
	case rc != nil && rc.(int32) != 0:
		return nil, &pb.GuestError{Kind: pb.GuestError_GUEST_ERROR,
			Message: fmt.Sprintf("call to %s returned %d without an error message", export, rc.(int32))}, false
	case len(out) > shared.MaxPayloadBytes:
		return nil, &pb.GuestError{Kind: pb.GuestError_GUEST_ERROR,
			Message: fmt.Sprintf("call to %s produced %d bytes of output; the limit is %d bytes (10 MiB)", export, len(out), shared.MaxPayloadBytes)}, false
	}
	return out, nil, false
}

// memorySize is the guest's linear memory size in bytes (0 if it exports none).
func (g *guest) memorySize() uint64 {
	if g.instance == nil {
		return 0
	}
	ext := g.instance.GetExport(g.store, "memory")
	if ext == nil || ext.Memory() == nil {
		return 0
	}
	return uint64(ext.Memory().DataSize(g.store))
}

// checkImports names every import of module that linker cannot satisfy, so a capsule built against
// host functions this runtime lacks fails to load with a list instead of wasmtime's first miss.
func checkImports(module *wasmtime.Module, linker *wasmtime.Linker, store *wasmtime.Store, provided map[string][]string) error {
	var missing []string
	for _, imp := range module.Imports() {
		name := ""
		if imp.Name() != nil {
			name = *imp.Name()
		}
		if linker.Get(store, imp.Module(), name) == nil {
			missing = append(missing, fmt.Sprintf("%s::%s", imp.Module(), name))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var offer []string
	for _, mod := range []string{kernel.ModuleName, userModule} {
		offer = append(offer, mod+": "+strings.Join(provided[mod], ", "))
	}
	return fmt.Errorf("the module imports %s, which this host does not provide (it provides %s; and wasi_snapshot_preview1)",
		strings.Join(missing, ", "), strings.Join(offer, "; "))
}

// callable reports whether an export can be called by name: () -> i32 (Extism's convention, 0 is
// success) or () -> ().
func callable(ty *wasmtime.FuncType) bool {
	if len(ty.Params()) != 0 {
		return false
	}
	res := ty.Results()
	return len(res) == 0 || (len(res) == 1 && res[0].Kind() == wasmtime.KindI32)
}

func callableExports(module *wasmtime.Module) []string {
	var names []string
	for _, exp := range module.Exports() {
		if ft := exp.Type().FuncType(); ft != nil && callable(ft) && !runtimeInits[exp.Name()] {
			names = append(names, exp.Name())
		}
	}
	sort.Strings(names)
	return names
}

// userImports lists the Astrid host functions (module extism:host/user) module imports, sorted,
// without duplicates.
func userImports(module *wasmtime.Module) []string {
	var names []string
	for _, imp := range module.Imports() {
		if imp.Module() == userModule && imp.Name() != nil {
			names = append(names, *imp.Name())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}
