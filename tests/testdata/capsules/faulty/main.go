//go:build wasip1

// Command faulty is a test-only capsule whose exports misbehave on request,
// for the runtime's fault-injection tests. Its exports:
//
//   - echo: the output is the input;
//   - fail: fails (returns 1) with the input as the error message (an
//     empty input fails it without a message);
//   - panic: a Go panic, "faulty: deliberate panic" (the runtime prints it
//     to stderr and the call traps);
//   - spin: an endless CPU loop, stopped only by the call timeout;
//   - hog: allocates and touches 1 MiB blocks, keeping them all live, until
//     the memory limit kills it;
//   - recurse: unbounded recursion, until the stack overflows (under
//     wasmtime, the engine's stack-overflow trap comes first);
//   - sleep: sleeps for the number of milliseconds given as input (a
//     malformed number fails the call);
//   - stderr: writes the input to stderr and to stdout, and succeeds;
//   - log: logs the input with log_info, and succeeds;
//   - flood: logs as many lines as its input says ("N"), each "flood line K", with log_info, and
//     succeeds;
//   - exit: os.Exit(3);
//   - memlimit: the Go runtime's memory limit (debug.SetMemoryLimit(-1)), in bytes: what the
//     runtime took from GOMEMLIMIT in the environment the shim gives it;
//   - publish: publishes one JSON payload of each size its input lists
//     ("SIZE,SIZE,..."), the k-th to test.v1.faulty.k, and fails at the
//     first refusal with its error (a variant of this capsule must grant
//     ipc_publish; the manifest here grants none).
package main

import (
	"errors"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

// main is required by the c-shared build mode and never called.
func main() {}

//go:wasmexport echo
func echo() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) { return in, nil })
}

//go:wasmexport memlimit
func memlimit() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		return strconv.AppendInt(nil, debug.SetMemoryLimit(-1), 10), nil
	})
}

//go:wasmexport fail
func fail() int32 {
	astrid.SetErrorString(astrid.InputString())
	return 1
}

// doPanic panics directly rather than inside astrid.Export, so that it stays
// an uncaught panic whatever Export does with panics.
//
//go:wasmexport panic
func doPanic() int32 {
	panic("faulty: deliberate panic")
}

// spinState is written on every iteration, so the loop does observable work.
var spinState uint64

//go:wasmexport spin
func spin() int32 {
	x := uint64(len(astrid.Input())) | 1
	for {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		spinState = x
	}
}

// hoard keeps every block hog allocates reachable, so the garbage collector
// cannot reclaim any of them.
var hoard [][]byte

//go:wasmexport hog
func hog() int32 {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = byte(i>>12) | 1
		}
		hoard = append(hoard, b)
	}
}

//go:wasmexport recurse
func recurse() int32 {
	var frame [64]uint64
	return int32(descend(0, &frame))
}

// descend recurses without bound: depth only grows, so the base case is never
// reached, and the addition after the call keeps it from being a tail call.
// Each frame holds 512 bytes, so the stack fills quickly.
//
//go:noinline
func descend(depth int, parent *[64]uint64) uint64 {
	var frame [64]uint64
	frame[depth&63] = uint64(depth)
	if depth < 0 {
		return frame[0]
	}
	return descend(depth+1, &frame) + frame[depth&63] + parent[depth&63]
}

//go:wasmexport sleep
func sleep() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		ms, err := strconv.Atoi(strings.TrimSpace(string(in)))
		if err != nil || ms < 0 {
			return nil, errors.New("sleep: input must be a number of milliseconds, got " + strconv.Quote(string(in)))
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return nil, nil
	})
}

//go:wasmexport stderr
func stderr() int32 {
	in := astrid.Input()
	os.Stderr.Write(in)
	os.Stdout.Write(in)
	return 0
}

//go:wasmexport log
func logInput() int32 {
	astrid.Log(astrid.LogInfo, astrid.InputString())
	return 0
}

//go:wasmexport flood
func flood() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		n, err := strconv.Atoi(strings.TrimSpace(string(in)))
		if err != nil || n < 0 {
			return nil, errors.New("flood: input must be a number of lines, got " + strconv.Quote(string(in)))
		}
		for k := range n {
			astrid.Log(astrid.LogInfo, "flood line "+strconv.Itoa(k))
		}
		return nil, nil
	})
}

//go:wasmexport exit
func exit() int32 {
	os.Exit(3)
	return 0
}

// publish publishes a payload of exactly each size listed: the number 1 for a size of 1, else a
// JSON string of that many bytes.
//
//go:wasmexport publish
func publish() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		for k, field := range strings.Split(strings.TrimSpace(string(in)), ",") {
			size, err := strconv.Atoi(field)
			if err != nil || size < 1 {
				return nil, errors.New("publish: input must be payload sizes separated by commas, got " + strconv.Quote(string(in)))
			}
			payload := []byte("1")
			if size > 1 {
				payload = make([]byte, size)
				for i := range payload {
					payload[i] = 'x'
				}
				payload[0], payload[size-1] = '"', '"'
			}
			if err := astrid.PublishJSON("test.v1.faulty."+strconv.Itoa(k+1), payload); err != nil {
				return nil, err
			}
		}
		return []byte("ok"), nil
	})
}
