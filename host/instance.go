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
	"github.com/astrid-go/astrid/host/metrics"
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

	// net is the CLI socket streams the capsule accepted (astrid_net_*); closed by Stop and
	// crashes.
	net instanceNet
	// uplinks is the capsule's registered uplinks and inbound queue (astrid_uplink_*); closed
	// by Stop and crashes.
	uplinks instanceUplinks

	ready     chan struct{} // closed by astrid_signal_ready
	readyOnce sync.Once

	// calls is the instance's call slot (capacity 1): every guest call the host makes through
	// invoke holds it, so the host's calls to one instance run one at a time, as the shim runs
	// them, and what the shim asks meanwhile belongs to the call holding it (see callerContext).
	// The run loop does not take it: it is never given a caller context.
	calls chan struct{}
	// caller is the caller context of the interceptor invocation holding the call slot, nil
	// outside one.
	caller atomic.Pointer[callerContext]
	// runExport is whether the module exports a function named run (read before it loads): a
	// run-loop capsule, whose [[interceptor]]s are subscribed for it instead of dispatched.
	runExport bool
	// hooks counts the invocations and drops of the capsule's interceptors.
	hooks interceptorCounters

	// restarts counts the restarts before this instance: the capsule's restart budget is spent
	// across instances, so a crash loop ends.
	restarts int
	// lastFailure is the reason of the capsule's most recent crash, this instance's or a
	// predecessor's.
	lastFailure string
	hasCrashed  bool
	// crashClass is the class of the instance's crash (a metrics.Crash* reason), "" if it has
	// not crashed.
	crashClass string
	// unloaded is set by Unload: a restart pending for the instance gives up.
	unloaded atomic.Bool
	// reloads counts the reloads before this instance (Reload).
	reloads int
	// hookWork counts the dispatched interceptor messages waiting for or running on this
	// instance, so that a reload lets the previous instance finish them.
	hookWork workCount
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
	Reloads     int    `json:"reloads"`
	LastFailure string `json:"last_failure,omitempty"`
	Pid         int    `json:"pid,omitempty"`
}

// Status reports the instance's state, restarts and last failure.
func (i *Instance) Status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := Status{Capsule: i.ID(), Instance: i.ipc.sourceID, State: i.state.String(), Reason: i.reason,
		Restarts: i.restarts, Reloads: i.reloads, LastFailure: i.lastFailure}
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
	i.host.dispatch.refresh() // only Ready capsules' interceptors run
	if s == StateFailed {
		i.log.Error("capsule failed", "state", s, "reason", reason)
	} else {
		i.log.Info("capsule state", "state", s)
	}
	i.host.publishEvent(TopicCapsulePrefix+s.String(), capsuleEvent{CapsuleID: i.ID(), Instance: i.ipc.sourceID, State: s.String(), Reason: reason})
}

// crashed records that the instance failed against its will: it is marked Failed, its
// subscriptions end, and astrid.v1.capsule.crashed says why. class is the reason's class for
// metrics (one of metrics.CrashReasons).
func (i *Instance) crashed(class, reason string) { i.crashedWith(class, reason, nil) }

// crashedWith is crashed with the guest error that ended a run loop, if that was the cause.
func (i *Instance) crashedWith(class, reason string, trap *pb.GuestError) {
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
	i.crashClass = class
	i.mu.Unlock()
	i.host.metrics.Crash(i.ID(), class)
	i.ipc.close()
	i.closeProcesses()
	i.closeHTTP()
	i.net.close()
	i.uplinks.close()
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
	i.crashed(metrics.CrashCompromised, reason)
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
	if !i.isStopping() {
		i.setState(StateFailed, reason)
	}
}

// isStopping reports whether the instance is being stopped deliberately.
func (i *Instance) isStopping() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stopping
}

// watchExit marks the instance Failed as soon as its shim exits without being asked to, or its
// gRPC connection ends while the process lives on (it is then killed).
func (i *Instance) watchExit() {
	defer close(i.watched)
	select {
	case <-i.proc.shim.Exited.Done():
	case <-i.proc.grpc.Ended():
		// A shim that died is reaped a moment after its connection ends: its exit then says how.
		if !i.proc.waitExited(healthExitGrace) && !i.isStopping() {
			i.crashed(metrics.CrashConnectionLost, "the shim's gRPC connection to the host ended while it ran; it was killed")
			i.proc.killGroup()
			i.proc.kill()
			return
		}
		<-i.proc.shim.Exited.Done()
	}
	if !i.isStopping() {
		i.crashed(metrics.CrashShimExit, i.proc.exitReason())
		// Release go-plugin's client, the broker's servers and the socket directory now rather
		// than when the instance is finally stopped.
		i.proc.kill()
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
// it did not answer in time, another error when the shim is gone. It is a ping on the shim's
// call connection (callwire.HostEnd.Ping), which an idle shim answers without allocating.
func (i *Instance) Health(ctx context.Context) error {
	if i.proc == nil || i.proc.calls == nil {
		return &CallError{Capsule: i.ID(), Export: "health", Reason: "no shim is running"}
	}
	h, err := i.proc.calls.Ping(ctx)
	switch code := status.Code(err); {
	case err == nil && h.Busy:
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
		i.crashed(metrics.CrashHealthCheck, reason)
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
		resp, err := i.proc.calls.Invoke(context.Background(), &pb.InvokeRequest{Export: "run", NoDeadline: true})
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
		i.crashedWith(metrics.CrashRunLoop, reason, trap)
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
	// Approval requests waiting for an answer end now (denied), whatever the shim does.
	i.host.approvals.stopInstance(i)
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
	i.net.close()
	i.uplinks.close()
	i.guestLog().close()
	if st, _ := i.State(); st != StateFailed {
		i.setState(StateStopped, "")
	}
}
