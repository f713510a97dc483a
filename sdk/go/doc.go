// Package astrid is the Go SDK for writing astrid capsules: WebAssembly
// modules that astrid-host loads, sandboxes and calls.
//
// A capsule is an ordinary Go main package built for WASI as a reactor
// library:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// The package must have a main function, which is never called (leave it
// empty). Each function the host can call is exported with //go:wasmexport
// and has the type func() int32: it reads its input and writes its output or
// error through this package, and returns 0 on success or non-zero on
// failure. The Go runtime's own export _initialize is run by the host once
// after the module is instantiated, before any other export. Go does not
// allow []byte, string results or uint8 in exported signatures, which is why
// data goes through Input and Output rather than through parameters.
//
// The calls reach the host through the Extism kernel imports
// (extism:host/env), so the capsule's input, output and error are blocks of
// the kernel memory, separate from the capsule's linear memory:
//
//   - Input and InputString return the call's input;
//   - Output and OutputString set its output;
//   - SetError and SetErrorString set its error message, reported by the
//     host when the export returns non-zero;
//   - Export wraps a func(input []byte) ([]byte, error) and does all of the
//     above, so most exports are one line;
//   - Memory, Allocate and FindMemory work with kernel blocks directly, the
//     way host functions exchange data.
//
// The package compiles on every platform, so go vet, go doc and editors see
// it as usual, but outside GOOS=wasip1 every call that reaches the kernel
// panics.
//
// # Example
//
// A capsule is a directory with a Capsule.toml manifest and the built .wasm
// file. Capsule.toml:
//
//	[package]
//	name = "hello"
//	version = "0.1.0"
//	description = "Greets whoever it is given"
//	astrid-version = ">=0.5.0"
//
//	[[component]]
//	id = "hello"
//	file = "hello.wasm"
//
//	[limits]
//	memory = "64MiB"
//	call_timeout = "5s"
//
// main.go:
//
//	//go:build wasip1
//
//	package main
//
//	import (
//		"errors"
//
//		astrid "github.com/astrid-go/astrid/sdk/go"
//	)
//
//	func main() {}
//
//	//go:wasmexport greet
//	func greet() int32 { return astrid.Export(greetImpl) }
//
//	func greetImpl(name []byte) ([]byte, error) {
//		if len(name) == 0 {
//			return nil, errors.New("greet: input is empty")
//		}
//		return []byte("Hello, " + string(name) + "!"), nil
//	}
//
// Build it in the capsule's directory, then call an export:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//	astrid-host call --input world . greet
//
// The full example is examples/hello in the astrid-go repository.
package astrid
