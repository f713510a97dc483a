package process

import (
	"context"
	"encoding/json"
	"fmt"
)

// Op is one of the process host functions.
type Op int

// The process host functions, in docs/abi.md's order.
const (
	Spawn Op = iota
	SpawnBackground
	ReadLogs
	Kill
	Wait
	Signal
	WriteStdin
)

// Ops are all the operations, for registering the host functions.
var Ops = []Op{Spawn, SpawnBackground, ReadLogs, Kill, Wait, Signal, WriteStdin}

var opNames = [...]string{
	Spawn:           "astrid_spawn_host",
	SpawnBackground: "astrid_spawn_background_host",
	ReadLogs:        "astrid_read_process_logs_host",
	Kill:            "astrid_kill_process_host",
	Wait:            "astrid_wait_process_host",
	Signal:          "astrid_signal_process_host",
	WriteStdin:      "astrid_write_process_stdin_host",
}

// requestNames name each operation's request in parse errors, as upstream does.
var requestNames = [...]string{
	Spawn:           "process",
	SpawnBackground: "process",
	ReadLogs:        "read logs",
	Kill:            "kill",
	Wait:            "wait",
	Signal:          "signal",
	WriteStdin:      "write stdin",
}

// String is the host function's name, e.g. astrid_spawn_host.
func (op Op) String() string {
	if op >= 0 && int(op) < len(opNames) {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// OpByName returns the operation of a host function name.
func OpByName(name string) (Op, bool) {
	for op, n := range opNames {
		if n == name {
			return Op(op), true
		}
	}
	return 0, false
}

// maxRequestBytes is the size cap of op's request.
func (op Op) maxRequestBytes() int {
	switch op {
	case Spawn, SpawnBackground:
		return MaxSpawnRequestBytes
	case WriteStdin:
		return MaxWriteStdinRequestBytes
	}
	return MaxIDRequestBytes
}

// Handle serves one host function call: request is its JSON request, principal the caller's
// principal, ctx is cancelled when the capsule unloads (it ends a blocking spawn, wait or
// write_stdin). It returns the JSON result, or an error whose text is the message for the
// guest. Results are bounded (see the package documentation, "Result sizes").
func (m *Manager) Handle(ctx context.Context, op Op, principal string, request []byte) ([]byte, error) {
	if op < 0 || int(op) >= len(opNames) {
		return nil, fmt.Errorf("unknown process operation %d", int(op))
	}
	if limit := op.maxRequestBytes(); len(request) > limit {
		return nil, fmt.Errorf("%s request too large: %d bytes, at most %d", requestNames[op], len(request), limit)
	}
	parse := func(v any) error {
		if err := json.Unmarshal(request, v); err != nil {
			return fmt.Errorf("failed to parse %s request: %v", requestNames[op], err)
		}
		return nil
	}
	var result any
	var err error
	switch op {
	case Spawn, SpawnBackground:
		var req SpawnRequest
		if err := parse(&req); err != nil {
			return nil, err
		}
		if op == Spawn {
			result, err = m.Spawn(ctx, principal, req)
		} else {
			result, err = m.SpawnBackground(ctx, principal, req)
		}
	case ReadLogs, Kill:
		var req IDRequest
		if err := parse(&req); err != nil {
			return nil, err
		}
		if op == ReadLogs {
			result, err = m.ReadLogs(principal, req.ID)
		} else {
			result, err = m.Kill(principal, req.ID)
		}
	case Wait:
		var req WaitRequest
		if err := parse(&req); err != nil {
			return nil, err
		}
		result, err = m.Wait(ctx, principal, req)
	case Signal:
		var req SignalRequest
		if err := parse(&req); err != nil {
			return nil, err
		}
		result, err = m.Signal(principal, req)
	case WriteStdin:
		var req WriteStdinRequest
		if err := parse(&req); err != nil {
			return nil, err
		}
		result, err = m.WriteStdin(ctx, principal, req)
	}
	if err != nil {
		return nil, err
	}
	return encode(result)
}
