package shim

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// LogLevelOff is the log level at which a capsule logs nothing (the levels below are pb's TRACE
// to ERROR, 0 to 4, as get_log_level reports them).
const LogLevelOff = 5

// logFuncNames are the extism log imports, indexed by level.
var logFuncNames = [...]string{"log_trace", "log_debug", "log_info", "log_warn", "log_error"}

// logFunc implements log_<level>(msg): a log line of the capsule, dropped here when it is below
// the capsule's level so it costs no RPC.
func (v *env) logFunc(level int) func(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	return func(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
		if int32(level) < v.cfg.logLevel {
			return nil, nil
		}
		h := uint64(args[0].I64())
		msg, err := k.ReadCaller(c, h)
		if err != nil {
			return nil, fmt.Errorf("message handle %#x: %w", h, err)
		}
		if len(msg) > MaxLogLineBytes {
			msg = append(msg[:MaxLogLineBytes:MaxLogLineBytes], " …[line cut at 64 KiB]"...)
		}
		v.logs.add(pb.LogEntry_Level(level), "log", string(msg))
		return nil, nil
	}
}

// getLogLevel: get_log_level() -> the capsule's level, 0 trace … 4 error, 5 off.
func (v *env) getLogLevel(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	return []wasmtime.Val{wasmtime.ValI32(v.cfg.logLevel)}, nil
}
