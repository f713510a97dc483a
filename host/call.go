package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/host/metrics"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// CallError is returned by Call when the capsule could not run the call at all: it is not Ready,
// or its shim died or stopped answering. A guest that ran and failed gives a *GuestError instead.
type CallError struct {
	Capsule string
	Export  string
	Reason  string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("capsule %s: call to %s: %s", e.Capsule, e.Export, e.Reason)
}

// GuestError is returned by Call when the guest ran and failed: it reported an error, trapped,
// ran out of time or memory, or the export does not exist.
//
// Message, Backtrace and Stderr hold what the guest chose, escaped (logtext): they are safe to
// print.
type GuestError struct {
	Capsule   string
	Export    string
	Kind      pb.GuestError_Kind
	Message   string // one line
	Backtrace string // one frame per line
	ExitCode  int32
	// Stderr is what the guest wrote to stderr during the call (a crash report), one line per
	// line, or "".
	Stderr string
}

func (e *GuestError) Error() string { return e.Message }

// KindName is the failure's kind as events and logs name it: "guest_error" (the guest returned
// an error), "exit" (it called proc_exit with a status other than 0), "unreachable", "panic",
// "timeout", "out_of_memory", "stack_overflow", "out_of_fuel", "trap" (any other trap),
// "no_such_export", "cancelled" or "not_loaded".
func (e *GuestError) KindName() string { return trapKindName(e.Kind) }

// Call invokes export with input and returns the guest's output. timeout overrides the capsule's
// [limits] call_timeout when positive. Calls to one instance run one at a time: a call waits
// (as long as ctx allows) for the one before it, and its time limit starts once it runs.
func (i *Instance) Call(ctx context.Context, export string, input []byte, timeout time.Duration) ([]byte, error) {
	start := time.Now()
	out, err := i.invoke(ctx, export, input, timeout, nil)
	i.recordInvocation(metrics.KindExport, start, err)
	return out, err
}

// notReady is the CallError of a call to an instance that is not Ready, or nil if it is.
func (i *Instance) notReady(export string) error {
	if st, reason := i.State(); st != StateReady {
		msg := fmt.Sprintf("the capsule is %s", st)
		if reason != "" {
			msg += ": " + reason
		}
		return &CallError{Capsule: i.ID(), Export: export, Reason: msg}
	}
	return nil
}

// acquireCall waits for the instance's call slot until ctx ends.
func (i *Instance) acquireCall(ctx context.Context) error {
	select {
	case i.calls <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// releaseCall gives the call slot back.
func (i *Instance) releaseCall() { <-i.calls }

// invoke is Call with a caller context (nil for none): it holds the call slot until the shim's
// call has ended, and sets caller on the instance and in the request for exactly that long.
func (i *Instance) invoke(ctx context.Context, export string, input []byte, timeout time.Duration, caller *callerContext) ([]byte, error) {
	if err := i.notReady(export); err != nil {
		return nil, err
	}
	if err := i.acquireCall(ctx); err != nil {
		return nil, &CallError{Capsule: i.ID(), Export: export, Reason: "gave up waiting for the capsule's call in progress: " + err.Error()}
	}
	return i.invokeHeld(ctx, export, input, timeout, caller)
}

// invokeHeld is invoke for a caller that holds the call slot; it gives the slot back.
//
// The slot (and the caller context) is held until the shim has answered, even when ctx ends
// first: the guest's call goes on in the shim until its own time limit, and the host requests
// it makes meanwhile must not be taken for the next call's. So the RPC itself is not cancelled
// by ctx; when ctx ends first, Call returns at once and a background task waits for the answer
// (and reports a trap or a crash in it) before it gives the slot back.
func (i *Instance) invokeHeld(ctx context.Context, export string, input []byte, timeout time.Duration, caller *callerContext) ([]byte, error) {
	if err := i.notReady(export); err != nil {
		i.releaseCall()
		return nil, err // it stopped or failed while the call waited
	}
	if err := shared.CheckInput(len(input)); err != nil {
		i.releaseCall()
		return nil, &CallError{Capsule: i.ID(), Export: export, Reason: err.Error()}
	}
	req := &pb.InvokeRequest{Export: export, Input: input, TimeoutMs: uint64(timeout.Milliseconds())}
	if caller != nil {
		req.Caller = caller.json
		i.caller.Store(caller)
	}
	limit := timeout
	if limit <= 0 {
		limit = i.opts.callTimeout(i.manifest)
	}
	// A watchdog rather than a gRPC deadline: a deadline travels to the shim and costs a timer
	// on both sides of every call (~10 µs), while only the host needs to act on it.
	rpcCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var watchdog *time.Timer
	if limit > 0 {
		watchdog = time.AfterFunc(limit+shimAnswerGrace, func() { cancel(errShimUnresponsive) })
	}
	finish := func(resp *pb.InvokeResponse, err error) ([]byte, error) {
		out, err := i.answer(rpcCtx, export, resp, err)
		if watchdog != nil {
			watchdog.Stop()
		}
		cancel(nil)
		if caller != nil {
			i.caller.Store(nil)
		}
		i.releaseCall()
		return out, err
	}
	if ctx.Done() == nil { // ctx cannot end: no need to watch it
		resp, err := i.proc.calls.Invoke(rpcCtx, req)
		return finish(resp, err)
	}
	type answer struct {
		resp *pb.InvokeResponse
		err  error
	}
	// Unbuffered: the answer is handed over only to a receiver, so exactly one side (this call,
	// or the task once the call was abandoned) finishes the call.
	answered := make(chan answer)
	abandoned := make(chan struct{})
	i.host.background(func() {
		resp, err := i.proc.calls.Invoke(rpcCtx, req)
		select {
		case answered <- answer{resp, err}:
		case <-abandoned:
			finish(resp, err)
		}
	})
	select {
	case a := <-answered:
		return finish(a.resp, a.err)
	case <-ctx.Done():
		close(abandoned)
		select {
		case a := <-answered: // it answered meanwhile
			return finish(a.resp, a.err)
		default:
		}
		reason := ctx.Err().Error()
		if cause := context.Cause(ctx); cause != ctx.Err() {
			reason += " (" + cause.Error() + ")"
		}
		return nil, &CallError{Capsule: i.ID(), Export: export, Reason: reason +
			"; the call goes on in the capsule until its time limit, and the capsule's next call waits for it"}
	}
}

// answer turns the shim's answer to a call into its output or error, reporting traps on the bus
// and a dead or hung shim as a crash.
func (i *Instance) answer(rpcCtx context.Context, export string, resp *pb.InvokeResponse, err error) ([]byte, error) {
	if err != nil {
		return nil, i.rpcFailure(rpcCtx, export, err)
	}
	// What the guest published in the call reached the bus before the call's answer was read;
	// what the bus did not take fails the call, unless it failed already.
	if nerr := i.ipc.takeNotTaken(); nerr != nil && resp.Error == nil {
		resp.Error = &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("call to %s: %v", export, nerr)}
	}
	if resp.Error != nil {
		ge := guestError(resp.Error)
		args := []any{"export", export, "kind", trapKindName(ge.Kind), "message", ge.Message}
		if ge.Stderr != "" {
			args = append(args, "stderr", ge.Stderr)
		}
		switch {
		case trapped(ge.Kind):
			// The shim has already dropped the trapped Store; the next call gets a fresh one.
			i.log.Warn("guest trapped; its Store was replaced", args...)
			i.host.publishEvent(TopicCapsuleTrapped, trapEvent{CapsuleID: i.ID(), Instance: i.ipc.sourceID, Export: export,
				TrapKind: trapKindName(ge.Kind), Message: ge.Message, Backtrace: ge.Backtrace})
		case ge.Stderr != "":
			// Not a trap, but the guest said something on stderr: show it under the failure.
			i.log.Warn("guest call failed", args...)
		}
		return nil, &GuestError{Capsule: i.ID(), Export: export, Kind: ge.Kind, Message: ge.Message, Backtrace: ge.Backtrace, ExitCode: ge.ExitCode, Stderr: ge.Stderr}
	}
	return resp.Output, nil
}

// trapped reports whether a guest failure of kind k was a trap (the guest did not end the call
// itself): its Store is gone and the host says so on the bus.
func trapped(k pb.GuestError_Kind) bool {
	switch k {
	case pb.GuestError_UNREACHABLE, pb.GuestError_PANIC, pb.GuestError_TIMEOUT, pb.GuestError_OUT_OF_MEMORY,
		pb.GuestError_STACK_OVERFLOW, pb.GuestError_OUT_OF_FUEL, pb.GuestError_TRAP, pb.GuestError_EXIT:
		return true
	}
	return false
}

// rpcFailure turns a failed Invoke RPC into a CallError and, when the shim is gone or hung, marks
// the instance Failed.
func (i *Instance) rpcFailure(ctx context.Context, export string, err error) error {
	code := status.Code(err)
	switch {
	case i.proc.waitExited(0) || code == codes.Unavailable:
		// The connection broke: the shim died. Wait briefly for it to be reaped to say how.
		reason := "the shim stopped answering: " + status.Convert(err).Message()
		alive := !i.proc.waitExited(2 * time.Second)
		class := metrics.CrashConnectionLost
		if !alive {
			reason, class = i.proc.exitReason(), metrics.CrashShimExit
		}
		i.crashed(class, reason)
		if alive {
			// Its connection is gone but the process is not: nothing can reach it any more, so
			// end it now rather than let the restart wait out go-plugin's graceful kill.
			i.proc.killGroup()
		}
		return &CallError{Capsule: i.ID(), Export: export, Reason: reason + " during the call"}
	case errors.Is(context.Cause(ctx), errShimUnresponsive):
		reason := fmt.Sprintf("the shim did not answer within the call's time limit plus %s; it was killed", shimAnswerGrace)
		i.crashed(metrics.CrashUnresponsive, reason)
		i.proc.kill()
		return &CallError{Capsule: i.ID(), Export: export, Reason: reason}
	case ctx.Err() != nil:
		return &CallError{Capsule: i.ID(), Export: export, Reason: ctx.Err().Error()}
	default:
		return &CallError{Capsule: i.ID(), Export: export, Reason: status.Convert(err).Message()}
	}
}
