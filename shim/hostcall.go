package shim

import (
	"fmt"
	"strconv"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// hostCallFunc returns the adapter of one host function of shared.HostCalls (KV, files, HTTP,
// hooks, capability checks). The shim only adapts: it reads the guest's argument blocks, each
// checked against its limit before it is copied, sends them to the host, which decides and
// performs the function, and hands the guest the result in the function's encoding
// (shared.Result). The capsule's log lines and pending publishes go out first (env.hostCall), so
// the host sees the guest's calls in the order it made them.
func (v *env) hostCallFunc(f shared.HostCall) func(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	return func(c *wasmtime.Caller, k *kernel.Kernel, params []wasmtime.Val) ([]wasmtime.Val, error) {
		args := make([][]byte, len(f.Args))
		for i := range f.Args {
			if f.Args[i].Ignored() {
				args[i] = []byte{} // upstream never reads it, whatever the guest passed
				continue
			}
			b, err := readBounded(c, k, uint64(params[i].I64()), f.Args[i])
			if err != nil {
				return nil, err
			}
			args[i] = b
		}
		resp, err := v.hostCall(&pb.HostCallRequest{Op: f.Op, Args: args})
		if err != nil {
			return nil, err
		}
		switch f.Result {
		case shared.ResultHostResult:
			out := make([]byte, 0, 1+max(len(resp.Result), len(resp.Error)))
			if resp.Failed {
				out = append(append(out, shared.HostResultErr), resp.Error...)
			} else {
				out = append(append(out, shared.HostResultOK), resp.Result...)
			}
			return returnBytes(c, k, out)
		case shared.ResultBytes:
			if resp.Failed {
				return nil, fmt.Errorf("%s", resp.Error)
			}
			return returnBytes(c, k, resp.Result)
		case shared.ResultRawI64:
			if resp.Failed {
				return nil, fmt.Errorf("%s", resp.Error)
			}
			n, err := strconv.ParseInt(string(resp.Result), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: the host answered %q, not a decimal i64", f.Name, resp.Result)
			}
			return []wasmtime.Val{wasmtime.ValI64(n)}, nil
		default:
			if resp.Failed {
				return nil, fmt.Errorf("%s", resp.Error)
			}
			return nil, nil
		}
	}
}

// hostCallImport is the wasm signature of f: one i64 block per argument, and one i64 result (a
// block, or a bare i64 for ResultRawI64) unless f returns nothing.
func hostCallImport(f shared.HostCall) (params, results []wasmtime.ValKind) {
	params = make([]wasmtime.ValKind, len(f.Args))
	for i := range params {
		params[i] = wasmtime.KindI64
	}
	if f.Result != shared.ResultVoid {
		results = []wasmtime.ValKind{wasmtime.KindI64}
	}
	return params, results
}
