package process

import (
	"fmt"
	"sort"
	"strings"
	"syscall"

	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// SpawnRequest is the request of spawn and spawn_background (docs/abi.md#processes).
type SpawnRequest struct {
	// Cmd must equal an entry of the capsule's [capabilities] host_process.
	Cmd  string   `json:"cmd"`
	Args []string `json:"args,omitempty"`
	// Env is added to the pass-through variables; reserved keys are refused.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is a directory inside the workspace, relative to it ("" = the workspace root).
	Cwd string `json:"cwd,omitempty"`
	// Stdin is written to the process's stdin (then closed, for a synchronous spawn).
	Stdin *string `json:"stdin,omitempty"`
	// TimeoutMS kills a synchronous spawn's tree after this many milliseconds. spawn_background
	// refuses it.
	TimeoutMS *uint64 `json:"timeout_ms,omitempty"`
}

// SpawnResult is the result of spawn.
type SpawnResult struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// ExitCode is -1 when the process was killed by a signal.
	ExitCode int `json:"exit_code"`
	// Signal is the signal that killed the process, if one did.
	Signal *int `json:"signal,omitempty"`
	// Truncated says that a stream had more than MaxCaptureBytes and only its start is here.
	Truncated bool `json:"truncated"`
	// TimedOut says that timeout_ms expired and the tree was killed.
	TimedOut bool `json:"timed_out,omitempty"`
}

// SpawnBackgroundResult is the result of spawn_background: the id for the other operations.
type SpawnBackgroundResult struct {
	ID uint64 `json:"id"`
}

// IDRequest is the request of read_logs and kill.
type IDRequest struct {
	ID uint64 `json:"id"`
}

// LogsResult is the result of read_logs: the output since the previous read_logs.
type LogsResult struct {
	Stdout  string `json:"stdout"`
	Stderr  string `json:"stderr"`
	Running bool   `json:"running"`
	// ExitCode is null while running and when the process was killed by a signal.
	ExitCode *int `json:"exit_code"`
	Signal   *int `json:"signal,omitempty"`
}

// KillResult is the result of kill: how the process ended and its last output.
type KillResult struct {
	// Killed says the process was still running when the kill was asked for.
	Killed   bool   `json:"killed"`
	ExitCode *int   `json:"exit_code"`
	Signal   *int   `json:"signal,omitempty"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// WaitRequest is the request of wait. Without TimeoutMS the wait lasts until the process ends
// or the request's context is cancelled; 0 just looks.
type WaitRequest struct {
	ID        uint64  `json:"id"`
	TimeoutMS *uint64 `json:"timeout_ms,omitempty"`
}

// WaitResult is the result of wait. On a timeout the process is left running.
type WaitResult struct {
	Running  bool `json:"running"`
	ExitCode *int `json:"exit_code"`
	Signal   *int `json:"signal"`
	TimedOut bool `json:"timed_out"`
}

// SignalRequest is the request of signal; Signal is one of SignalNames.
type SignalRequest struct {
	ID     uint64 `json:"id"`
	Signal string `json:"signal"`
}

// SignalResult is the result of signal.
type SignalResult struct {
	OK bool `json:"ok"`
}

// WriteStdinRequest is the request of write_stdin: Data (at most MaxStdinWrite bytes) is written,
// then stdin is closed if Close is set.
type WriteStdinRequest struct {
	ID    uint64 `json:"id"`
	Data  string `json:"data"`
	Close bool   `json:"close,omitempty"`
}

// WriteStdinResult is the result of write_stdin.
type WriteStdinResult struct {
	Written int `json:"written"`
}

// signals are the signals a capsule may send, by their ABI names.
var signals = map[string]syscall.Signal{
	"term": syscall.SIGTERM,
	"hup":  syscall.SIGHUP,
	"int":  syscall.SIGINT,
	"usr1": syscall.SIGUSR1,
	"usr2": syscall.SIGUSR2,
	"stop": syscall.SIGSTOP,
	"cont": syscall.SIGCONT,
	"kill": syscall.SIGKILL,
}

// SignalNames lists the names signal accepts, in the ABI's order.
var SignalNames = []string{"term", "hup", "int", "usr1", "usr2", "stop", "cont", "kill"}

func parseSignal(name string) (syscall.Signal, error) {
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: use one of %s", name, strings.Join(SignalNames, ", "))
}

// exitFields gives the JSON exit_code and signal of an ended process: exit_code is null when a
// signal killed it.
func exitFields(e sandbox.Exit) (code, signal *int) {
	if e.Signal != 0 {
		s := int(e.Signal)
		return nil, &s
	}
	c := e.Code
	return &c, nil
}

// encode marshals a result without HTML escaping (output is not HTML, and escaping would
// inflate it) and without the encoder's trailing newline.
func encode(v any) ([]byte, error) {
	out, err := serdejson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("failed to encode process result: %v", err)
	}
	return out, nil
}

// sortedKeys returns m's keys in order, so environments are deterministic.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
