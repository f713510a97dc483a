// Package shim runs one capsule's WebAssembly guest under wasmtime-go and serves it to
// astrid-host over go-plugin (see package shared for the protocol).
//
// A shim holds one Engine and at most one Store. It has no authority of its own: everything a
// guest asks for beyond computing (logging today; the bus and processes later) is an RPC to the
// host, which decides. Every use of the Store is serialised by one lock, because gRPC handlers run
// concurrently and a wasmtime Store must not be used from two goroutines at once.
package shim

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// wasmtimeModule is the Go module path of the wasmtime binding; its version keys the artefact cache.
const wasmtimeModule = "github.com/bytecodealliance/wasmtime-go/v39"

// EngineOptions are the engine settings chosen when the shim starts. Everything here changes
// the compiled code, so it is part of the artefact cache key (see Engine.Config).
type EngineOptions struct {
	// Fuel turns on fuel metering, for capsules that set [limits] fuel.
	Fuel bool
	// KernelArtefact, if set, is a cached artefact of the kernel compiled by this shim build
	// under the same options, as the host handed it over (shared.EnvShimKernelFD). When it is
	// missing or unusable the kernel is compiled instead.
	KernelArtefact *shared.Artefact
}

// Engine is the shim's one wasmtime engine, with epoch interruption always on so that every call
// can be given a deadline, and the kernel module compiled for it.
type Engine struct {
	opts   EngineOptions
	engine *wasmtime.Engine
	kernel *wasmtime.Module
	// kernelArtefact is the serialised kernel when NewEngine had to compile it, for the host to
	// cache; nil when it came from KernelArtefact.
	kernelArtefact []byte
}

// NewEngine creates the engine and compiles the kernel for it.
func NewEngine(opts EngineOptions) (*Engine, error) {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	cfg.SetConsumeFuel(opts.Fuel)
	e := &Engine{opts: opts, engine: wasmtime.NewEngineWithConfig(cfg)}
	if opts.KernelArtefact != nil {
		// Compiling the kernel costs several milliseconds of every shim start; loading it, 0.3 ms.
		if k, err := e.DeserializeInherited(opts.KernelArtefact, "kernel"); err == nil {
			e.kernel = k
			return e, nil
		}
	}
	k, err := kernel.Compile(e.engine)
	if err != nil {
		return nil, fmt.Errorf("compile the extism kernel: %w", err)
	}
	e.kernel = k
	if e.kernelArtefact, err = k.Serialize(); err != nil {
		return nil, fmt.Errorf("serialise the extism kernel: %w", err)
	}
	return e, nil
}

// KernelArtefact returns the serialised kernel if this engine compiled it, else nil.
func (e *Engine) KernelArtefact() []byte { return e.kernelArtefact }

// WasmtimeVersion is the version of the wasmtime-go module this shim was built with.
func WasmtimeVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == wasmtimeModule {
				if dep.Replace != nil {
					return dep.Replace.Version
				}
				return dep.Version
			}
		}
	}
	// Tests and `go run` builds may lack module information; name the major version at least.
	return "v39 (unknown minor)"
}

// Config describes every engine setting that changes compiled code. Artefacts compiled under one
// Config cannot be loaded under another.
func (e *Engine) Config() string {
	fuel := "off"
	if e.opts.Fuel {
		fuel = "on"
	}
	return fmt.Sprintf("epoch=on fuel=%s target=%s/%s", fuel, runtime.GOOS, runtime.GOARCH)
}

// Compile compiles WebAssembly bytes and returns the serialised artefact.
func (e *Engine) Compile(wasm []byte) ([]byte, error) {
	m, err := wasmtime.NewModule(e.engine, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	defer m.Close()
	art, err := m.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serialise: %w", err)
	}
	return art, nil
}

// Deserialize loads an artefact written by Compile (of the same build and Config); name says
// which in the error.
func (e *Engine) Deserialize(artefact []byte, name string) (*wasmtime.Module, error) {
	m, err := wasmtime.NewModuleDeserialize(e.engine, artefact)
	if err != nil {
		return nil, fmt.Errorf("load artefact %s: %w", name, err)
	}
	return m, nil
}

// DeserializeInherited loads an artefact the host handed over (of the same build and Config):
// mapped from its sealed descriptor where /proc shows it, else copied from its bytes; name says
// which in the error.
func (e *Engine) DeserializeInherited(a *shared.Artefact, name string) (*wasmtime.Module, error) {
	if a.Path != "" {
		if m, err := wasmtime.NewModuleDeserializeFile(e.engine, a.Path); err == nil {
			return m, nil
		}
	}
	return e.Deserialize(a.Bytes, name)
}

// interrupt makes the guest call running now (if any) trap at its next epoch check. Every call
// runs with an epoch deadline of one tick (see callTimer), so one increment is enough.
func (e *Engine) interrupt() {
	e.engine.IncrementEpoch()
}
