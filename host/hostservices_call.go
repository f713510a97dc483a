package host

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
)

// hostCallHandler performs one host function of shared.HostCalls for the instance of s. args
// have passed the function's CheckArgs. It returns the guest's result, or an error: a
// *guestFailure is what the guest sees (a HostResult error or the text its call traps with);
// any other error fails the request (the guest's call traps with its message).
type hostCallHandler func(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error)

// hostCallHandlers are the host's side of shared.HostCalls, by operation. Each area keeps its
// handlers in its own file (hostservices_kv.go, _fs.go, _http.go, _hooks.go, _sys.go).
var hostCallHandlers = map[pb.HostOp]hostCallHandler{}

// quickHostOps are the host functions that never wait for anything outside the host's memory
// and its KV store, so they need no takeover of the shim's connection while they run
// (callwire.MayWait): arming it costs a timer, and a wake-up of another thread, per call. A recv
// arms it itself when it waits in its goroutine (ipcRecv); a parked one returns at once.
var quickHostOps = map[pb.HostOp]bool{
	pb.HostOp_HOST_OP_KV_GET: true, pb.HostOp_HOST_OP_KV_SET: true, pb.HostOp_HOST_OP_KV_DELETE: true,
	pb.HostOp_HOST_OP_KV_LIST_KEYS: true, pb.HostOp_HOST_OP_KV_CLEAR_PREFIX: true,
	pb.HostOp_HOST_OP_IPC_SUBSCRIBE: true, pb.HostOp_HOST_OP_IPC_UNSUBSCRIBE: true,
	pb.HostOp_HOST_OP_IPC_POLL: true, pb.HostOp_HOST_OP_IPC_RECV: true, pb.HostOp_HOST_OP_SIGNAL_READY: true,
	pb.HostOp_HOST_OP_CHECK_CAPSULE_CAPABILITY: true,
}

// quickHostCall says req is one of quickHostOps: an export call that reads its own answer may
// run it on its own goroutine (callwire.HostEnd.HandleQuick).
func quickHostCall(req *pb.HostCallRequest) bool { return quickHostOps[req.Op] }

// guestFailure is a host function's failure as the guest sees it.
type guestFailure struct{ msg string }

func (e *guestFailure) Error() string { return e.msg }

// guestFailed returns the failure a guest sees, formatted like fmt.Errorf (%w is not kept).
func guestFailed(format string, args ...any) error {
	return &guestFailure{msg: fmt.Sprintf(format, args...)}
}

// HostCall runs one host function of shared.HostCalls for the guest: a HostCall frame on the
// instance's call connection (shared/callwire, served from shimProcess.serveHostServices); an
// error it returns goes back as a HostError frame. The arguments are checked
// against the function's limits again: a correct shim never sends what the shim's own check
// (the same function) refuses, so a request that fails it comes from a compromised shim.
func (s *hostServices) HostCall(ctx context.Context, req *pb.HostCallRequest) (resp *pb.HostCallResponse, err error) {
	f, ok := shared.HostCallOf(req.Op)
	if !ok {
		return nil, s.inst.compromised(fmt.Errorf("unknown host function operation %d", req.Op))
	}
	defer func() {
		failed := failedIf(err)
		if errors.Is(err, callwire.ErrAnswerLater) { // (a recv answered when its message comes)
			failed = 0
		}
		if resp.GetFailed() { // a HostResult error, or the text the guest's call traps with
			failed = 1
		}
		s.recordHostCall(f.Name, 1, failed)
	}()
	if err := f.CheckArgs(req.Args); err != nil {
		return nil, s.inst.compromised(err)
	}
	if err := s.inst.ipc.takeNotTaken(); err != nil {
		// Publishes the guest made before this call were not taken: the call reports them (once)
		// instead of running, as the shim's own report did when it waited for the answers.
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	handle, ok := hostCallHandlers[req.Op]
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "%s is not provided by this host", f.Name)
	}
	if !quickHostOps[req.Op] {
		callwire.MayWait(ctx) // the shim's connection is read by another goroutine meanwhile
	}
	result, err := handle(ctx, s, req.Args)
	if errors.Is(err, callwire.ErrAnswerLater) {
		return nil, err
	}
	return hostCallResponse(f.Name, result, err)
}

// hostCallResponse is the answer of a host function that returned result and err.
func hostCallResponse(name string, result []byte, err error) (*pb.HostCallResponse, error) {
	var gf *guestFailure
	switch {
	case errors.As(err, &gf):
		return &pb.HostCallResponse{Failed: true, Error: gf.msg}, nil
	case err != nil:
		if _, isStatus := status.FromError(err); isStatus {
			return nil, err
		}
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if len(result) > shared.MaxHostCallResultBytes {
		return nil, status.Errorf(codes.ResourceExhausted, "%s: the result is %d bytes; the limit is %d bytes", name, len(result), shared.MaxHostCallResultBytes)
	}
	return &pb.HostCallResponse{Result: result}, nil
}
