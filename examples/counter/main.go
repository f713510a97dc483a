//go:build wasip1

// Command counter is an example capsule of the astrid Go SDK: a counter kept
// in a variable, so that it survives from one call to the next for as long
// as the capsule instance lives. Its exports:
//
//   - increment: adds the configuration value step (an integer, 1 unless the
//     operator sets it, e.g. --config step=5) to the counter, logs the new
//     value at info level and outputs it as decimal text;
//   - reset: sets the counter back to 0 (it deletes the variable) and
//     outputs "0".
//
// Build it from the repository root:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/counter/counter.wasm ./examples/counter
package main

import (
	"fmt"
	"strconv"
	"strings"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

// main is required by the c-shared build mode and never called: the host runs
// _initialize and then the exports.
func main() {}

// countVar is the variable that holds the counter, as an 8-byte integer
// (astrid.SetVarInt), the encoding Extism's PDKs use.
const countVar = "count"

//go:wasmexport increment
func increment() int32 { return astrid.Export(incrementBy) }

func incrementBy([]byte) ([]byte, error) {
	step := int64(1)
	if s, ok := astrid.Config("step"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("increment: config step = %q is not an integer", s)
		}
		step = n
	}
	count, _ := astrid.VarInt(countVar) // 0 when not set yet
	count += step
	astrid.SetVarInt(countVar, count)
	astrid.Logf(astrid.LogInfo, "count is now %d (step %d)", count, step)
	return strconv.AppendInt(nil, count, 10), nil
}

//go:wasmexport reset
func reset() int32 { return astrid.Export(resetCount) }

func resetCount([]byte) ([]byte, error) {
	astrid.DeleteVar(countVar)
	astrid.Log(astrid.LogDebug, "count reset")
	return []byte("0"), nil
}
