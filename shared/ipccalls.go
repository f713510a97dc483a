package shared

import (
	"encoding/binary"
	"fmt"

	"github.com/astrid-go/astrid/shared/pb"
)

// The IPC host functions other than astrid_ipc_publish travel as HostCall frames with these
// operations (publishes travel in Publish frames, shared/callwire). The shim adapts each one
// itself (it checks the guest's arguments with package bus/guard first), so they are not in
// HostCalls, whose functions the shim registers generically; the host checks their blocks with
// the same CheckArgs.
//
// A subscription handle or a recv timeout travels as 8 bytes, little-endian (IPCUint/ParseIPCUint):
// the shim has parsed the guest's decimal text already.
var IPCCalls = []HostCall{
	// astrid_ipc_subscribe: the pattern; the result is the new handle (IPCUint).
	{"astrid_ipc_subscribe", pb.HostOp_HOST_OP_IPC_SUBSCRIBE, []Arg{{"pattern", MaxIPCPatternBytes}}, ResultBytes},
	{"astrid_ipc_unsubscribe", pb.HostOp_HOST_OP_IPC_UNSUBSCRIBE, []Arg{ipcUintArg("handle")}, ResultVoid},
	// astrid_ipc_poll and astrid_ipc_recv: the result is the envelope JSON.
	{"astrid_ipc_poll", pb.HostOp_HOST_OP_IPC_POLL, []Arg{ipcUintArg("handle")}, ResultBytes},
	{"astrid_ipc_recv", pb.HostOp_HOST_OP_IPC_RECV, []Arg{ipcUintArg("handle"), ipcUintArg("timeout_ms")}, ResultBytes},
	{"astrid_signal_ready", pb.HostOp_HOST_OP_SIGNAL_READY, nil, ResultVoid},
}

// MaxIPCPatternBytes bounds the pattern block of an IPC subscribe host call (the guard's
// rules bound the pattern far below it).
const MaxIPCPatternBytes = 4 << 10

func ipcUintArg(name string) Arg { return Arg{name, 8} }

// IPCUint encodes a handle or a timeout for an IPC host call.
func IPCUint(n uint64) []byte { return binary.LittleEndian.AppendUint64(make([]byte, 0, 8), n) }

// ParseIPCUint decodes a handle or a timeout of an IPC host call: exactly 8 bytes.
func ParseIPCUint(name string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%s: %d bytes; an IPC host call carries it in 8", name, len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}
