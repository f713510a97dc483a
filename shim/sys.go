package shim

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// Argument limits of the shim-local sys functions, upstream's (astrid-capsule 0.5, host/sys.rs):
// a block over its limit traps the call before the shim copies it, with upstream's text
// "memory allocation of N bytes exceeds maximum allowed limit of L bytes".
const (
	// MaxLogLevelBytes bounds astrid_log's level word: 64 bytes.
	MaxLogLevelBytes = 64
	// MaxLogMessageBytes bounds astrid_log's message: 64 KiB (MAX_LOG_MESSAGE_LEN).
	MaxLogMessageBytes = 64 << 10
)

// The argument blocks of the shim-local sys functions, with their limits.
var (
	logLevelArg   = shared.Arg{Name: "level", Max: MaxLogLevelBytes}
	logMessageArg = shared.Arg{Name: "message", Max: MaxLogMessageBytes}
	configKeyArg  = shared.Arg{Name: "key", Max: MaxKeyBytes}
)

// noCaller is what astrid_get_caller returns outside an invocation for a bus message.
const noCaller = "{}"

// readBounded reads argument block h, refusing it before the copy when it is longer than a
// allows (the trap names the argument and gives upstream's text).
func readBounded(c *wasmtime.Caller, k *kernel.Kernel, h uint64, a shared.Arg) ([]byte, error) {
	b, err := k.ReadCallerMax(c, h, a.Max, func(n int) error { return a.CheckLen(n) })
	if err != nil {
		return nil, fmt.Errorf("%s handle %#x: %w", a.Name, h, err)
	}
	return b, nil
}

// logLevelOf is the level of an astrid_log line from the guest's level word, as upstream reads
// it: trace, debug, warn or warning, error or err, in any case; any other word is info.
func logLevelOf(word []byte) pb.LogEntry_Level {
	switch strings.ToLower(string(word)) {
	case "trace":
		return pb.LogEntry_TRACE
	case "debug":
		return pb.LogEntry_DEBUG
	case "warn", "warning":
		return pb.LogEntry_WARN
	case "error", "err":
		return pb.LogEntry_ERROR
	default:
		return pb.LogEntry_INFO
	}
}

// astridLog: astrid_log(level, message) — a log line of the capsule at the level the word names,
// like the kernel's log_* functions: below the capsule's log level it is dropped here, otherwise
// it goes to the host's log, escaped. Both blocks are checked against their limits first, so an
// oversized one traps whatever the level.
func (v *env) astridLog(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	word, err := readBounded(c, k, uint64(args[0].I64()), logLevelArg)
	if err != nil {
		return nil, err
	}
	msg, err := readBounded(c, k, uint64(args[1].I64()), logMessageArg)
	if err != nil {
		return nil, err
	}
	level := logLevelOf(word)
	if int32(level) < v.cfg.logLevel {
		return nil, nil
	}
	v.logs.add(level, "log", string(msg))
	return nil, nil
}

// astridGetConfig: astrid_get_config(key) -> the value of a configuration key, the same value
// config_get returns (the capsule's [env] defaults, a string as it is and other JSON as its
// text, overridden by the operator's --config); "" (an empty block) when the key is not set.
func (v *env) astridGetConfig(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	key, err := readBounded(c, k, uint64(args[0].I64()), configKeyArg)
	if err != nil {
		return nil, err
	}
	return returnBytes(c, k, []byte(v.cfg.config[string(key)]))
}

// astridGetCaller: astrid_get_caller() -> the caller context of the call in progress, the JSON
// {"principal","source_id","timestamp"} the host sends with an invocation for a bus message
// (InvokeRequest.caller), or {} outside one.
func (v *env) astridGetCaller(c *wasmtime.Caller, k *kernel.Kernel, _ []wasmtime.Val) ([]wasmtime.Val, error) {
	if len(v.call.caller) == 0 {
		return returnBytes(c, k, []byte(noCaller))
	}
	return returnBytes(c, k, v.call.caller)
}

// astridClockMs: astrid_clock_ms() -> the wall-clock time in milliseconds since the Unix epoch,
// as a decimal string.
func (v *env) astridClockMs(c *wasmtime.Caller, k *kernel.Kernel, _ []wasmtime.Val) ([]wasmtime.Val, error) {
	return returnBytes(c, k, []byte(strconv.FormatInt(time.Now().UnixMilli(), 10)))
}
