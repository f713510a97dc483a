package shim

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// processImport is one process host function as the shim registers it. Each takes one JSON
// request block and returns one JSON result block (docs/abi.md#processes).
type processImport struct {
	name string
	op   pb.ProcessOp
}

// processFuncs are the process host functions the shim registers: shared.ProcessFuncs, the
// table the host dispatches on too.
var processFuncs = func() []processImport {
	out := make([]processImport, len(shared.ProcessFuncs))
	for i, f := range shared.ProcessFuncs {
		out[i] = processImport{f.Name, f.Op}
	}
	return out
}()

// processFunc returns the host function for op. The shim only adapts: the host decides whether
// the capsule may run the command, validates the request, owns the processes and returns the
// result; its refusal traps the call with its message. The capsule's log lines and pending
// publishes go out first, so they are not held back while a spawn or a wait blocks.
func (v *env) processFunc(op pb.ProcessOp) func(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	return func(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
		req, err := k.ReadCaller(c, uint64(args[0].I64()))
		if err != nil {
			return nil, fmt.Errorf("request handle: %w", err)
		}
		if len(req) > shared.MaxPayloadBytes {
			return nil, fmt.Errorf("the request is %d bytes; the limit is %d bytes (10 MiB)", len(req), shared.MaxPayloadBytes)
		}
		if err := v.flushBeforeHost(); err != nil {
			return nil, err
		}
		client, err := v.host.get()
		if err != nil {
			return nil, err
		}
		resp, err := client.Process(v.call.ctx, &pb.ProcessRequest{Op: op, Request: req})
		if err != nil {
			return nil, v.hostError(err)
		}
		return returnBytes(c, k, resp.Result)
	}
}
