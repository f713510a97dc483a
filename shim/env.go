package shim

import (
	"context"
	"errors"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shim/internal/hostfn"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// MaxKeyBytes caps the key of a config_get, var_get or var_set call: 4 KiB, upstream's
// MAX_KEY_LEN.
const MaxKeyBytes = 4 << 10

// Why a call was interrupted; the cause of the call's context.
var (
	errCallTimeout = errors.New("the call hit its time limit")
	errUnloading   = errors.New("the capsule is unloading")
)

// env is everything a guest's imports reach beyond the kernel: the capsule's configuration, its
// log, its variables, the connection to the host, and the state of the call in progress. There is
// one per shim; it outlives the Stores, which come and go after traps.
type env struct {
	cfg   guestConfig
	stdio *stdio
	logs  *logSink
	host  *hostConn
	// calls carries the host functions of shared.HostCalls (and the export calls) to the host.
	calls *callwire.ShimEnd
	vars  *varStore
	ipc   *ipcState
	call  callState
}

// callState is the state of the guest call in progress. Host functions run on the goroutine of
// the call, so they read it without locking.
type callState struct {
	// ctx is cancelled when the call's time is up (cause errCallTimeout) or the capsule unloads
	// (cause errUnloading); blocking host functions give up when it is done.
	ctx context.Context
	// exit is the status the guest gave proc_exit during the call (nil: it did not call it).
	exit *int32
	// The last http_request's response status and headers (JSON), for http_status_code and
	// http_headers.
	httpStatus  int32
	httpHeaders []byte
	// caller is the caller context astrid_get_caller returns (InvokeRequest.caller): set by
	// Invoke for the call, kept when the call begins (runWithDeadline), empty outside one.
	caller []byte
}

// userModule is the import module of the Astrid host functions.
const userModule = "extism:host/user"

// hostFunc is a Go implementation of an import: an extism:host/env kernel function or an Astrid
// host function in extism:host/user.
type hostFunc struct {
	module  string
	name    string
	params  []wasmtime.ValKind
	results []wasmtime.ValKind
	fn      func(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error)
}

// hostFuncs lists the imports implemented in Go: the extism:host/env functions that are not the
// kernel's, and the Astrid host functions.
func (v *env) hostFuncs() []hostFunc {
	i32, i64 := wasmtime.KindI32, wasmtime.KindI64
	none := []wasmtime.ValKind(nil)
	one := []wasmtime.ValKind{i64}
	two := []wasmtime.ValKind{i64, i64}
	env := kernel.ModuleName
	fns := []hostFunc{
		{env, "config_get", one, one, v.configGet},
		{env, "var_get", one, one, v.varGet},
		{env, "var_set", two, none, v.varSet},
		{env, "get_log_level", none, []wasmtime.ValKind{i32}, v.getLogLevel},
		{env, "http_request", two, one, v.httpRequest},
		{env, "http_status_code", none, []wasmtime.ValKind{i32}, v.httpStatusCode},
		{env, "http_headers", none, one, v.httpHeaders},
		{userModule, "astrid_ipc_publish", two, none, v.ipcPublish},
		{userModule, "astrid_ipc_subscribe", one, one, v.ipcSubscribe},
		{userModule, "astrid_ipc_unsubscribe", one, none, v.ipcUnsubscribe},
		{userModule, "astrid_ipc_poll", one, one, v.ipcPoll},
		{userModule, "astrid_ipc_recv", two, one, v.ipcRecv},
		{userModule, "astrid_get_interceptor_handles", none, one, v.getInterceptorHandles},
		{userModule, "astrid_signal_ready", none, none, v.signalReady},
		{userModule, "astrid_log", two, none, v.astridLog},
		{userModule, "astrid_get_config", one, one, v.astridGetConfig},
		{userModule, "astrid_get_caller", none, one, v.astridGetCaller},
		{userModule, "astrid_clock_ms", none, one, v.astridClockMs},
	}
	for _, f := range processFuncs {
		fns = append(fns, hostFunc{userModule, f.name, one, one, v.processFunc(f.op)})
	}
	for _, f := range shared.HostCalls {
		params, results := hostCallImport(f)
		fns = append(fns, hostFunc{userModule, f.Name, params, results, v.hostCallFunc(f)})
	}
	for level, name := range logFuncNames {
		fns = append(fns, hostFunc{env, name, one, none, v.logFunc(level)})
	}
	return fns
}

// define adds to linker the Go host functions that the module imports (imported, from
// importedNames), bound to kernel k. Defining all ~75 for every guest cost an idle shim ~60 KB of
// memory (BenchmarkIdleMemory): the linker's definitions, freed after instantiation, stay in
// malloc's arenas. A function the module imports and this shim does not provide is not defined,
// and checkImports names it. The functions go through hostfn's trampoline, which costs a guest's
// call about 170 ns against wasmtime-go's FuncNew's 400 (hostfn.BenchmarkHostCall); an error
// traps the call with the message "<name>: <error>".
func (v *env) define(linker *wasmtime.Linker, k *kernel.Kernel, imported map[[2]string]bool) error {
	for _, f := range v.hostFuncs() {
		if !imported[[2]string{f.module, f.name}] {
			continue
		}
		fn := f.fn
		err := hostfn.Define(linker, f.module, f.name, f.params, f.results, func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, error) {
			return fn(c, k, args)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// providedImports names every function this shim provides, by import module.
func (v *env) providedImports() map[string][]string {
	names := map[string][]string{kernel.ModuleName: append([]string(nil), kernel.Imports...)}
	for name := range kernel.CopyImports {
		names[userModule] = append(names[userModule], name)
	}
	for _, f := range v.hostFuncs() {
		names[f.module] = append(names[f.module], f.name)
	}
	return names
}

// readKey reads a key block for config_get, var_get and var_set.
func readKey(c *wasmtime.Caller, k *kernel.Kernel, h uint64) (string, error) {
	key, err := k.ReadCaller(c, h)
	if err != nil {
		return "", fmt.Errorf("key handle %#x: %w", h, err)
	}
	if len(key) > MaxKeyBytes {
		return "", fmt.Errorf("the key is %d bytes; keys are at most %d bytes", len(key), MaxKeyBytes)
	}
	return string(key), nil
}

// returnBytes hands data to the guest as a new block (0 for none).
func returnBytes(c *wasmtime.Caller, k *kernel.Kernel, data []byte) ([]wasmtime.Val, error) {
	if len(data) == 0 {
		return []wasmtime.Val{wasmtime.ValI64(0)}, nil
	}
	h, err := k.AllocCaller(c, data)
	if err != nil {
		return nil, err
	}
	return []wasmtime.Val{wasmtime.ValI64(int64(h))}, nil
}

// configGet: config_get(key) -> value, the capsule's [env] values and the operator's --config;
// 0 when the key is not set. The configuration comes from the host at load.
func (v *env) configGet(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	key, err := readKey(c, k, uint64(args[0].I64()))
	if err != nil {
		return nil, err
	}
	value, ok := v.cfg.config[key]
	if !ok {
		return []wasmtime.Val{wasmtime.ValI64(0)}, nil
	}
	return returnBytes(c, k, []byte(value))
}

// importedNames is the set of (import module, name) pairs that module imports.
func importedNames(module *wasmtime.Module) map[[2]string]bool {
	names := map[[2]string]bool{}
	for _, imp := range module.Imports() {
		if imp.Name() != nil {
			names[[2]string{imp.Module(), *imp.Name()}] = true
		}
	}
	return names
}
