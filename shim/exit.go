package shim

import (
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared/pb"
)

// defineProcExit shadows WASI's proc_exit. wasmtime's own traps on a status outside [0, 126)
// ("exit with invalid exit status"), losing it; Extism reports every status as the guest gave it
// (500, or -1 for 0xffffffff), and so does this one: it records the status in the call's state and
// unwinds the guest with a trap, which classify turns into an EXIT failure (or, for status 0, the
// call's success).
func (v *env) defineProcExit(linker *wasmtime.Linker) error {
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{wasmtime.NewValType(wasmtime.KindI32)}, nil)
	return linker.FuncNew("wasi_snapshot_preview1", "proc_exit", ty,
		func(_ *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			status := args[0].I32()
			v.call.exit = &status
			return nil, wasmtime.NewTrap(fmt.Sprintf("proc_exit(%d)", status))
		})
}

// exitError is the failure of a call whose guest called proc_exit with a non-zero status.
func exitError(export string, status int32) *pb.GuestError {
	return &pb.GuestError{Kind: pb.GuestError_EXIT, ExitCode: status,
		Message: fmt.Sprintf("call to %s: the guest exited with status %d", export, status)}
}
