package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/httpgate"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/process"
	"github.com/astrid-go/astrid/shared/pb"
)

// State is where a capsule instance is in its life.
type State int

// The states of an instance: Loading → Ready → Stopped, or Failed (with a reason) from either.
const (
	StateLoading State = iota
	StateReady
	StateStopped
	StateFailed
)

func (s State) String() string {
	switch s {
	case StateLoading:
		return "loading"
	case StateReady:
		return "ready"
	case StateStopped:
		return "stopped"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// shimAnswerGrace is how much longer than a call's own time limit the host waits for the shim's
// answer before it declares the shim hung.
const shimAnswerGrace = 5 * time.Second

// errShimUnresponsive cancels a call whose shim has not answered in time.
var errShimUnresponsive = errors.New("the shim did not answer in time")

// stopRPCTimeout bounds the Shutdown RPC when an instance stops.
const stopRPCTimeout = 2 * time.Second

// Instance is one loaded capsule: its manifest, its shim process and its state.
type Instance struct {
	manifest *manifest.Manifest
	opts     LoadOptions
	host     *Host
	ipc      *instanceIPC
	log      hclog.Logger
	// glog is the way in to the log for what the guest and its shim chose (escaped and
	// rate-limited); see guestLog.
	glog     *guestLog
	glogOnce sync.Once
	proc     *shimProcess
	// pid is proc's pid, readable from any goroutine (the host looks instances up by a
	// connecting peer's pid while others are still loading).
	pid     atomic.Int64
	watched chan struct{} // closed when the exit watcher has finished

	mu       sync.Mutex
	state    State
	reason   string
	exports  []string
	stopping bool
	http     *httpgate.Client // built on the first HTTP request; closed by Stop and crashes
	httpDone bool             // closeHTTP ran: no client is built any more
	procs    *process.Manager // made on the first process request; closed by Stop and crashes
	runLoop  bool             // the run export was started

	ready     chan struct{} // closed by astrid_signal_ready
	readyOnce sync.Once

	// restarts counts the restarts before this instance: the capsule's restart budget is spent
	// across instances, so a crash loop ends.
	restarts int
	// lastFailure is the reason of the capsule's most recent crash, this instance's or a
	// predecessor's.
	lastFailure string
	hasCrashed  bool
}

// guestLog returns the instance's way in to the log for what its guest and shim chose.
func (i *Instance) guestLog() *guestLog {
	i.glogOnce.Do(func() { i.glog = newGuestLog(i.log) })
	return i.glog
}

// Restarts is how many times the capsule was restarted before this instance.
func (i *Instance) Restarts() int { return i.restarts }

// Status is a snapshot of a capsule for operators (astrid-host status).
type Status struct {
	Capsule     string `json:"capsule"`
	Instance    string `json:"instance"`
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
	Restarts    int    `json:"restarts"`
	LastFailure string `json:"last_failure,omitempty"`
	Pid         int    `json:"pid,omitempty"`
}

// Status reports the instance's state, restarts and last failure.
func (i *Instance) Status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := Status{Capsule: i.ID(), Instance: i.ipc.sourceID, State: i.state.String(), Reason: i.reason,
		Restarts: i.restarts, LastFailure: i.lastFailure}
	if i.state == StateReady && i.proc != nil {
		st.Pid = i.proc.pid
	}
	return st
}

// ID is the capsule id (package.name).
func (i *Instance) ID() string { return i.manifest.ID() }

// Manifest is the capsule's manifest.
func (i *Instance) Manifest() *manifest.Manifest { return i.manifest }

// State returns the instance's state and, for Failed, why.
func (i *Instance) State() (State, string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.state, i.reason
}

// Pid is the shim's process id (0 if no shim was started).
func (i *Instance) Pid() int {
	return int(i.pid.Load())
}

// Exports lists the guest exports that can be called by name.
func (i *Instance) Exports() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.exports...)
}

func (i *Instance) setState(s State, reason string) {
	i.mu.Lock()
	changed := i.state != s
	i.state, i.reason = s, reason
	i.mu.Unlock()
	if !changed {
		return
	}
	if s == StateFailed {
		i.log.Error("capsule failed", "state", s, "reason", reason)
	} else {
		i.log.Info("capsule state", "state", s)
	}
	i.host.publishEvent(TopicCapsulePrefix+s.String(), capsuleEvent{CapsuleID: i.ID(), Instance: i.ipc.sourceID, State: s.String(), Reason: reason})
}

// crashed records that the instance failed against its will: it is marked Failed, its
// subscriptions end, and astrid.v1.capsule.crashed says why.
func (i *Instance) crashed(reason string) { i.crashedWith(reason, nil) }

// crashedWith is crashed with the guest error that ended a run loop, if that was the cause.
func (i *Instance) crashedWith(reason string, trap *pb.GuestError) {
	// A crash is noticed by several paths at once (the failed call, the exit watcher): only the
	// first one counts, so the capsule is restarted once.
	i.mu.Lock()
	first := !i.stopping && !i.hasCrashed
	i.hasCrashed = true
	i.mu.Unlock()
	if !first {
		return
	}
	i.fail(reason)
	i.mu.Lock()
	i.lastFailure = reason
	i.mu.Unlock()
	i.ipc.close()
	i.closeProcesses()
	i.closeHTTP()
	ev := capsuleEvent{CapsuleID: i.ID(), Instance: i.ipc.sourceID, Reason: reason}
	if trap != nil {
		ev.TrapKind, ev.Backtrace = trapKindName(trap.Kind), trap.Backtrace
	}
	if i.proc != nil && i.proc.stderr != nil {
		ev.StderrTail = i.proc.stderr.Lines()
	}
	i.host.publishEvent(TopicCapsuleCrashed, ev)
	i.host.superviseCrash(i, reason)
}

// compromised handles a request from the shim that a correct shim never sends: the shim is not
// trustworthy, so the instance crashes and is stopped. The error is the shim's answer.
func (i *Instance) compromised(err error) error {
	reason := "the shim sent a request a correct shim never sends, so it is no longer trusted: " + err.Error()
	i.log.Error("stopping a compromised shim", "pid", i.Pid(), "reason", err.Error())
	i.crashed(reason)
	i.host.background(func() { i.Stop(context.Background()) })
	return status.Error(codes.PermissionDenied, reason)
}

// setReason replaces the reason of a Failed instance (to add what supervision decided).
func (i *Instance) setReason(reason string) {
	i.mu.Lock()
	i.reason = reason
	i.mu.Unlock()
}

// fail marks the instance Failed unless it is being stopped deliberately.
func (i *Instance) fail(reason string) {
	i.mu.Lock()
	stopping := i.stopping
	i.mu.Unlock()
	if !stopping {
		i.setState(StateFailed, reason)
	}
}

// watchExit marks the instance Failed as soon as its shim exits without being asked to.
func (i *Instance) watchExit() {
	defer close(i.watched)
	<-i.proc.shim.Exited.Done()
	i.mu.Lock()
	stopping := i.stopping
	i.mu.Unlock()
	if !stopping {
		i.crashed(i.proc.exitReason())
		// Release go-plugin's client, the broker's servers and the socket directory now rather
		// than when the instance is finally stopped.
		i.proc.kill()
	}
}

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
// [limits] call_timeout when positive.
func (i *Instance) Call(ctx context.Context, export string, input []byte, timeout time.Duration) ([]byte, error) {
	if st, reason := i.State(); st != StateReady {
		msg := fmt.Sprintf("the capsule is %s", st)
		if reason != "" {
			msg += ": " + reason
		}
		return nil, &CallError{Capsule: i.ID(), Export: export, Reason: msg}
	}
	limit := timeout
	if limit <= 0 {
		limit = i.opts.callTimeout(i.manifest)
	}
	if limit > 0 {
		// A watchdog rather than a gRPC deadline: a deadline travels to the shim and costs a timer
		// on both sides of every call (~10 µs), while only the host needs to act on it.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		watchdog := time.AfterFunc(limit+shimAnswerGrace, func() { cancel(errShimUnresponsive) })
		defer func() {
			watchdog.Stop()
			cancel(nil)
		}()
	}
	resp, err := i.proc.shim.Invoke(ctx, &pb.InvokeRequest{Export: export, Input: input, TimeoutMs: uint64(timeout.Milliseconds())})
	if err != nil {
		return nil, i.rpcFailure(ctx, export, err)
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
		if !alive {
			reason = i.proc.exitReason()
		}
		i.crashed(reason)
		if alive {
			// Its connection is gone but the process is not: nothing can reach it any more, so
			// end it now rather than let the restart wait out go-plugin's graceful kill.
			i.proc.killGroup()
		}
		return &CallError{Capsule: i.ID(), Export: export, Reason: reason + " during the call"}
	case errors.Is(context.Cause(ctx), errShimUnresponsive):
		reason := fmt.Sprintf("the shim did not answer within the call's time limit plus %s; it was killed", shimAnswerGrace)
		i.crashed(reason)
		i.proc.kill()
		return &CallError{Capsule: i.ID(), Export: export, Reason: reason}
	case ctx.Err() != nil:
		return &CallError{Capsule: i.ID(), Export: export, Reason: ctx.Err().Error()}
	default:
		return &CallError{Capsule: i.ID(), Export: export, Reason: status.Convert(err).Message()}
	}
}

// ErrBusy is returned by Health when a guest call (or a run loop) holds the capsule's Store: the
// shim answered, and the call's own deadline watches the guest.
var ErrBusy = errors.New("the capsule is busy in a call")

// ErrUnresponsive is returned by Health when the shim did not answer within the deadline, or
// could not take its idle Store: it is stopped or wedged.
var ErrUnresponsive = errors.New("the shim did not answer the health check in time")

// Health asks the shim whether it is alive and its Store usable, within ctx's deadline: nil when
// it is idle and well, ErrBusy (wrapped) when a call is running, ErrUnresponsive (wrapped) when
// it did not answer in time, another error when the shim is gone.
func (i *Instance) Health(ctx context.Context) error {
	if i.proc == nil || i.proc.shim == nil {
		return &CallError{Capsule: i.ID(), Export: "health", Reason: "no shim is running"}
	}
	resp, err := i.proc.shim.Health(ctx, &pb.HealthRequest{})
	switch code := status.Code(err); {
	case err == nil && resp.Busy:
		return fmt.Errorf("capsule %s: %w", i.ID(), ErrBusy)
	case err == nil:
		return nil
	case code == codes.DeadlineExceeded:
		return fmt.Errorf("capsule %s: %w", i.ID(), ErrUnresponsive)
	default:
		return &CallError{Capsule: i.ID(), Export: "health", Reason: status.Convert(err).Message()}
	}
}

// healthExitGrace is how long a failed health check waits for the shim to be reaped before it
// blames the shim's connection: a shim that died fails the RPC a moment before it is reaped.
const healthExitGrace = time.Second

// monitorHealth checks the shim every interval while the instance is Ready; a shim that does not
// answer within timeout crashes the instance (astrid.v1.health.failed, then the usual crash
// handling and restart), and is killed.
func (i *Instance) monitorHealth(interval, timeout time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-i.proc.shim.Exited.Done():
			return
		}
		if st, _ := i.State(); st != StateReady {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := i.Health(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrBusy) {
			continue
		}
		if !errors.Is(err, ErrUnresponsive) && i.proc.waitExited(healthExitGrace) {
			// The RPC failed because the shim died (its connection reset): the exit watcher
			// reports the crash with how it ended, which this check's error would hide.
			return
		}
		if st, _ := i.State(); st != StateReady {
			return // stopped meanwhile: not a health failure
		}
		reason := "health check failed: " + err.Error()
		i.host.publishEvent(TopicHealthFailed, capsuleEvent{CapsuleID: i.ID(), Instance: i.ipc.sourceID, Reason: reason})
		i.crashed(reason)
		// It does not answer, so it would not shut down gracefully either: SIGKILL at once.
		i.proc.killGroup()
		i.proc.kill()
		return
	}
}

// SubscriptionStats reports the counters of each of the capsule's live subscriptions, by handle.
func (i *Instance) SubscriptionStats() map[uint64]bus.Stats { return i.ipc.stats() }

// startRunLoop calls the capsule's run export in the background with no time limit, as a
// run-loop capsule expects. The loop ends when the capsule unloads; if it ends before that, the
// capsule has crashed.
func (i *Instance) startRunLoop() {
	i.mu.Lock()
	i.runLoop = true
	i.mu.Unlock()
	i.host.background(func() {
		resp, err := i.proc.shim.Invoke(context.Background(), &pb.InvokeRequest{Export: "run", NoDeadline: true})
		var reason string
		var trap *pb.GuestError
		switch {
		case err != nil:
			reason = "the run loop ended: " + status.Convert(err).Message()
			if i.proc.waitExited(0) {
				reason = "the run loop ended: " + i.proc.exitReason()
			}
		case resp.Error != nil:
			trap = guestError(resp.Error)
			reason = "the run loop failed: " + trap.Message
			if trap.Stderr != "" {
				i.log.Warn("run loop failed", "kind", trapKindName(trap.Kind), "message", trap.Message, "stderr", trap.Stderr)
			}
		default:
			reason = "the run loop returned; a run-loop capsule runs until it is unloaded"
		}
		i.crashedWith(reason, trap)
	})
}

// WaitReady waits until a run-loop capsule has called astrid_signal_ready, it stops being Ready,
// or ctx ends (the error says which). Other capsules are ready once loaded.
func (i *Instance) WaitReady(ctx context.Context) error {
	i.mu.Lock()
	runLoop := i.runLoop
	i.mu.Unlock()
	if !runLoop {
		return nil
	}
	select {
	case <-i.ready:
		return nil
	case <-ctx.Done():
		if st, reason := i.State(); st != StateReady {
			return fmt.Errorf("capsule %s is %s: %s", i.ID(), st, reason)
		}
		return fmt.Errorf("capsule %s did not signal ready: %w", i.ID(), ctx.Err())
	}
}

// Stop unloads the capsule: the shim interrupts the guest and drops its Store, then the shim
// process and its whole process group are ended. A Failed instance keeps its state and reason.
func (i *Instance) Stop(ctx context.Context) { i.stop(ctx, false) }

// stop is Stop; with kill, the shim's process group is SIGKILLed at once instead of being asked
// to shut down (for a shim that cannot answer, such as one still compiling past its deadline).
func (i *Instance) stop(ctx context.Context, kill bool) {
	i.mu.Lock()
	if i.stopping {
		i.mu.Unlock()
		return
	}
	i.stopping = true
	i.mu.Unlock()
	if i.proc != nil && kill {
		i.proc.killGroup()
	}
	if i.proc != nil {
		if i.proc.shim != nil && !kill && !i.proc.waitExited(0) {
			rctx, cancel := context.WithTimeout(ctx, stopRPCTimeout)
			_, err := i.proc.shim.Shutdown(rctx, &pb.ShutdownRequest{})
			cancel()
			if status.Code(err) == codes.DeadlineExceeded {
				// Stopped or wedged: a graceful exit would not come either.
				i.log.Warn("the shim did not answer the shutdown request; killing it", "pid", i.proc.pid)
				i.proc.killGroup()
			}
		}
		i.proc.kill()
		if i.watched != nil {
			<-i.watched
		}
	}
	i.ipc.close()
	i.closeProcesses()
	i.closeHTTP()
	i.guestLog().close()
	if st, _ := i.State(); st != StateFailed {
		i.setState(StateStopped, "")
	}
}
