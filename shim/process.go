package shim

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/kernel"
)

// processFuncs are the process host functions: name → the operation the host performs. Each takes
// one JSON request block and returns one JSON result block (docs/abi.md#processes).
var processFuncs = []struct {
	name string
	op   pb.ProcessOp
}{
	{"astrid_spawn_host", pb.ProcessOp_PROCESS_OP_SPAWN},
	{"astrid_spawn_background_host", pb.ProcessOp_PROCESS_OP_SPAWN_BACKGROUND},
	{"astrid_read_process_logs_host", pb.ProcessOp_PROCESS_OP_READ_LOGS},
	{"astrid_kill_process_host", pb.ProcessOp_PROCESS_OP_KILL},
	{"astrid_wait_process_host", pb.ProcessOp_PROCESS_OP_WAIT},
	{"astrid_signal_process_host", pb.ProcessOp_PROCESS_OP_SIGNAL},
	{"astrid_write_process_stdin_host", pb.ProcessOp_PROCESS_OP_WRITE_STDIN},
}

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
		client, err := v.ipcClient()
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
