// Package hostfn defines Go host functions in a wasmtime-go Linker with a leaner trampoline than
// wasmtime-go's Linker.FuncNew.
//
// FuncNew's trampoline crosses from Go into C several times at every call a guest makes: it asks
// for the caller's context and the Store's data (wasmtime_caller_context,
// wasmtime_context_get_data, under a process-wide mutex) to find the Go callback, and reads each
// argument and writes each result with a call into C (each call into C costs ~40 ns of the Go
// runtime's bookkeeping). Define instead registers the function with wasmtime's "unchecked" C
// API (wasmtime_linker_define_func_unchecked): wasmtime passes the arguments as raw values in one
// array, which Go reads and writes in place, and the callback is found by a cgo.Handle carried
// as the function's environment. A call is one crossing from C into Go and none back.
//
// The functions see the same *wasmtime.Caller and []wasmtime.Val as FuncNew's, so they are
// written as for FuncNew. The Caller is built from wasmtime's caller pointer: wasmtime-go's
// Caller holds only that pointer (TestLayout pins this, and the layouts of Linker and FuncType
// whose C pointers Define passes on). Unlike FuncNew, a Go panic in a function becomes a trap of
// the call (with the panic's value in its message) instead of a panic at the Func.Call that
// called the guest.
package hostfn

/*
#include "hostfn.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Func is a Go host function: it gets the call's Caller (valid until it returns) and its
// arguments, and returns its results or an error, which traps the guest's call with the
// message "<name>: <error>".
type Func func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, error)

// entry is what a defined function's environment handle refers to.
type entry struct {
	name    string
	params  []wasmtime.ValKind
	results []wasmtime.ValKind
	fn      Func
}

// live counts the defined functions whose environment wasmtime still holds (LiveFuncs).
var live atomic.Int64

// LiveFuncs reports how many functions defined with Define wasmtime still holds: their linkers
// or Stores are not closed yet. Tests use it to check that none is leaked.
func LiveFuncs() int64 { return live.Load() }

// Define defines module.name in linker as the Go function fn of the given parameter and result
// kinds (i32, i64, f32 or f64). Like FuncNew, the definition does not belong to a Store: it can
// instantiate modules in any Store of the linker's engine.
func Define(linker *wasmtime.Linker, module, name string, params, results []wasmtime.ValKind, fn Func) error {
	for _, k := range append(append([]wasmtime.ValKind(nil), params...), results...) {
		switch k {
		case wasmtime.KindI32, wasmtime.KindI64, wasmtime.KindF32, wasmtime.KindF64:
		default:
			return fmt.Errorf("define %s.%s: value kind %v is not supported", module, name, k)
		}
	}
	ty := wasmtime.NewFuncType(valTypes(params), valTypes(results))
	h := cgo.NewHandle(&entry{name: name, params: params, results: results, fn: fn})
	live.Add(1)
	err := C.astrid_hostfn_define(linkerPtr(linker),
		(*C.char)(unsafe.Pointer(unsafe.StringData(module))), C.size_t(len(module)),
		(*C.char)(unsafe.Pointer(unsafe.StringData(name))), C.size_t(len(name)),
		funcTypePtr(ty), C.uintptr_t(h))
	runtime.KeepAlive(linker)
	runtime.KeepAlive(ty)
	runtime.KeepAlive(module)
	runtime.KeepAlive(name)
	if err != nil {
		// wasmtime drops the environment (running the finalizer) when the definition fails.
		return fmt.Errorf("define %s.%s: %w", module, name, takeError(err))
	}
	return nil
}

// takeError turns a wasmtime error into a Go error and deletes it.
func takeError(err *C.wasmtime_error_t) error {
	var msg C.astrid_byte_vec_t
	C.wasmtime_error_message(err, &msg)
	text := C.GoStringN(msg.data, C.int(msg.size))
	C.wasm_byte_vec_delete(&msg)
	C.wasmtime_error_delete(err)
	return errors.New(text)
}

func valTypes(kinds []wasmtime.ValKind) []*wasmtime.ValType {
	types := make([]*wasmtime.ValType, len(kinds))
	for i, k := range kinds {
		types[i] = wasmtime.NewValType(k)
	}
	return types
}

// rawVal is wasmtime_val_raw_t: 16 bytes, the i32 and i64 members little-endian at the start.
type rawVal struct{ lo, hi uint64 }

//export astridHostfnCall
func astridHostfnCall(env C.uintptr_t, callerPtr *C.wasmtime_caller_t, raw *C.astrid_val_raw_t, n C.size_t) *C.wasm_trap_t {
	e := cgo.Handle(env).Value().(*entry)
	vals := unsafe.Slice((*rawVal)(unsafe.Pointer(raw)), int(n))
	f := &frame{caller: callerLayout{ptr: unsafe.Pointer(callerPtr)}}
	msg := e.call(f, vals)
	f.caller.ptr = nil // a Caller used after its call panics, as wasmtime-go's does
	if msg == "" {
		return nil
	}
	return C.astrid_hostfn_trap((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

//export astridHostfnFree
func astridHostfnFree(env C.uintptr_t) {
	cgo.Handle(env).Delete()
	live.Add(-1)
}

// frame is what a call allocates: its Caller and room for the arguments of most functions, in
// one allocation.
type frame struct {
	caller callerLayout
	args   [4]wasmtime.Val
}

// call runs the function on the raw arguments in vals and writes its results there (wasmtime
// sizes the array for the larger of the two). It returns the trap message, or "" on success.
func (e *entry) call(f *frame, vals []rawVal) (msg string) {
	if len(vals) < max(len(e.params), len(e.results)) {
		return fmt.Sprintf("%s: wasmtime passed %d values for %d parameters and %d results", e.name, len(vals), len(e.params), len(e.results))
	}
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprintf("%s: the shim panicked: %v", e.name, r)
		}
	}()
	args := f.args[:0]
	for i, k := range e.params {
		args = append(args, fromRaw(k, vals[i]))
	}
	res, err := e.fn((*wasmtime.Caller)(unsafe.Pointer(&f.caller)), args)
	if err != nil {
		return e.name + ": " + err.Error()
	}
	if len(res) != len(e.results) {
		return fmt.Sprintf("%s: the shim returned %d results for %d", e.name, len(res), len(e.results))
	}
	for i, k := range e.results {
		if res[i].Kind() != k {
			return fmt.Sprintf("%s: the shim returned a %v result for a %v", e.name, res[i].Kind(), k)
		}
	}
	for i, v := range res {
		vals[i] = toRaw(v)
	}
	return ""
}

// fromRaw reads a raw value of kind k.
func fromRaw(k wasmtime.ValKind, v rawVal) wasmtime.Val {
	switch k {
	case wasmtime.KindI32:
		return wasmtime.ValI32(int32(uint32(v.lo)))
	case wasmtime.KindI64:
		return wasmtime.ValI64(int64(v.lo))
	case wasmtime.KindF32:
		return wasmtime.ValF32(math.Float32frombits(uint32(v.lo)))
	default: // KindF64 (Define allows no other)
		return wasmtime.ValF64(math.Float64frombits(v.lo))
	}
}

// toRaw makes the raw value of v (an i32, i64, f32 or f64).
func toRaw(v wasmtime.Val) rawVal {
	switch v.Kind() {
	case wasmtime.KindI32:
		return rawVal{lo: uint64(uint32(v.I32()))}
	case wasmtime.KindI64:
		return rawVal{lo: uint64(v.I64())}
	case wasmtime.KindF32:
		return rawVal{lo: uint64(math.Float32bits(v.F32()))}
	default:
		return rawVal{lo: math.Float64bits(v.F64())}
	}
}

// callerLayout is wasmtime-go's Caller: its one field, the wasmtime_caller_t pointer.
type callerLayout struct{ ptr unsafe.Pointer }

// linkerLayout and funcTypeLayout are the start of wasmtime-go's Linker and FuncType: the C
// pointer, at offset 0.
type linkerLayout struct{ ptr unsafe.Pointer }
type funcTypeLayout struct{ ptr unsafe.Pointer }

func linkerPtr(l *wasmtime.Linker) unsafe.Pointer {
	p := (*linkerLayout)(unsafe.Pointer(l)).ptr
	if p == nil {
		panic("hostfn: the linker is closed")
	}
	return p
}

func funcTypePtr(ty *wasmtime.FuncType) unsafe.Pointer {
	return (*funcTypeLayout)(unsafe.Pointer(ty)).ptr
}

// CallerPtr returns the wasmtime_caller_t of a host function's Caller, for C code of the shim
// that works through it. It panics, as wasmtime-go does, if the call has returned.
func CallerPtr(c *wasmtime.Caller) unsafe.Pointer {
	p := (*callerLayout)(unsafe.Pointer(c)).ptr
	if p == nil {
		panic("cannot use caller after host function returns")
	}
	return p
}
