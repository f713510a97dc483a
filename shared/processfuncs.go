package shared

import "github.com/astrid-go/astrid/shared/pb"

// ProcessFunc is one process host function: the name a guest imports it by (extism:host/user),
// the protocol's operation the shim asks the host for, and how errors name its request (as
// upstream words them).
type ProcessFunc struct {
	Name    string
	Op      pb.ProcessOp
	Request string
}

// ProcessFuncs are the process host functions, in the ABI's order: the one table the shim
// registers its imports from and the host dispatches on (host/process). Adding one is an entry
// here, its request and result in host/process, and its case in process.Manager.Handle.
var ProcessFuncs = []ProcessFunc{
	{"astrid_spawn_host", pb.ProcessOp_PROCESS_OP_SPAWN, "process"},
	{"astrid_spawn_background_host", pb.ProcessOp_PROCESS_OP_SPAWN_BACKGROUND, "process"},
	{"astrid_read_process_logs_host", pb.ProcessOp_PROCESS_OP_READ_LOGS, "read logs"},
	{"astrid_kill_process_host", pb.ProcessOp_PROCESS_OP_KILL, "kill"},
	{"astrid_wait_process_host", pb.ProcessOp_PROCESS_OP_WAIT, "wait"},
	{"astrid_signal_process_host", pb.ProcessOp_PROCESS_OP_SIGNAL, "signal"},
	{"astrid_write_process_stdin_host", pb.ProcessOp_PROCESS_OP_WRITE_STDIN, "write stdin"},
}

// ProcessFuncOf returns the process host function of op, false for an operation not in the table.
func ProcessFuncOf(op pb.ProcessOp) (ProcessFunc, bool) {
	for _, f := range ProcessFuncs {
		if f.Op == op {
			return f, true
		}
	}
	return ProcessFunc{}, false
}
