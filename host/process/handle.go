package process

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// Op is one of the process host functions: the protocol's operation, named and listed once in
// shared.ProcessFuncs.
type Op pb.ProcessOp

// The process host functions, in docs/abi.md's order.
const (
	Spawn           = Op(pb.ProcessOp_PROCESS_OP_SPAWN)
	SpawnBackground = Op(pb.ProcessOp_PROCESS_OP_SPAWN_BACKGROUND)
	ReadLogs        = Op(pb.ProcessOp_PROCESS_OP_READ_LOGS)
	Kill            = Op(pb.ProcessOp_PROCESS_OP_KILL)
	Wait            = Op(pb.ProcessOp_PROCESS_OP_WAIT)
	Signal          = Op(pb.ProcessOp_PROCESS_OP_SIGNAL)
	WriteStdin      = Op(pb.ProcessOp_PROCESS_OP_WRITE_STDIN)
)

// Ops are all the operations, in the ABI's order.
var Ops = func() []Op {
	ops := make([]Op, len(shared.ProcessFuncs))
	for i, f := range shared.ProcessFuncs {
		ops[i] = Op(f.Op)
	}
	return ops
}()

// fn is op's entry in shared.ProcessFuncs.
func (op Op) fn() (shared.ProcessFunc, bool) { return shared.ProcessFuncOf(pb.ProcessOp(op)) }

// String is the host function's name, e.g. astrid_spawn_host.
func (op Op) String() string {
	if f, ok := op.fn(); ok {
		return f.Name
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// OpByName returns the operation of a host function name.
func OpByName(name string) (Op, bool) {
	for _, f := range shared.ProcessFuncs {
		if f.Name == name {
			return Op(f.Op), true
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
	fn, ok := op.fn()
	if !ok {
		return nil, fmt.Errorf("unknown process operation %d", int(op))
	}
	if limit := op.maxRequestBytes(); len(request) > limit {
		return nil, fmt.Errorf("%s request too large: %d bytes, at most %d", fn.Request, len(request), limit)
	}
	parse := func(v any) error {
		if err := json.Unmarshal(request, v); err != nil {
			return fmt.Errorf("failed to parse %s request: %v", fn.Request, err)
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
