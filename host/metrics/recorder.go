// Package metrics is the host's Prometheus instrumentation: the counters and histograms of
// things that happen (Recorder), a collector that reads the host's live state at scrape time
// (StateCollector), and the HTTP endpoint that serves them (Serve). docs/metrics.md lists every
// metric.
//
// Label values are bounded: capsule names come from the loaded set, function names from the
// host's fixed tables of host functions, and kinds, outcomes and reasons from the fixed classes
// declared here; no text a guest chose ever becomes a label.
package metrics

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astrid-go/astrid/shared/pb"
)

// Invocation kinds (the kind label of astrid_capsule_invocation_duration_seconds).
const (
	// KindExport is a call of an export by name (astrid-host call, lifecycle hooks, Instance.Call).
	KindExport = "export"
	// KindInterceptor is a call of astrid_hook_trigger for an [[interceptor]] (a bus message or
	// astrid_trigger_hook).
	KindInterceptor = "interceptor"
)

// Invocation outcomes besides the guest failure kinds (GuestOutcomes).
const (
	// OutcomeOK is a call that returned successfully.
	OutcomeOK = "ok"
	// OutcomeCallFailed is a call the capsule could not run: it was not ready, its shim died or
	// stopped answering, or the caller gave up waiting.
	OutcomeCallFailed = "call_failed"
	// OutcomeOther is any outcome not in the fixed set (never expected; it keeps labels bounded).
	OutcomeOther = "other"
)

// GuestOutcomes are the outcomes of a call the guest ran and failed: the guest failure kinds of
// the protocol (pb.GuestError_Kind), lower-cased as the host names them ("guest_error",
// "timeout", "unreachable", ...).
var GuestOutcomes = guestOutcomes()

func guestOutcomes() []string {
	out := make([]string, 0, len(pb.GuestError_Kind_name))
	for _, name := range pb.GuestError_Kind_name {
		out = append(out, strings.ToLower(name))
	}
	slices.Sort(out)
	return out
}

// Outcome bounds an invocation outcome: outcome itself if it is OutcomeOK, OutcomeCallFailed or
// one of GuestOutcomes, else OutcomeOther (a failure kind a compromised shim made up).
func Outcome(outcome string) string {
	if outcome != OutcomeOK && outcome != OutcomeCallFailed && !slices.Contains(GuestOutcomes, outcome) {
		return OutcomeOther
	}
	return outcome
}

// Crash reasons (the reason label of astrid_capsule_crashes_total and
// astrid_capsule_restarts_total): classes of what ended an instance against its will.
const (
	// CrashShimExit: the shim process exited or was killed by a signal without being asked to.
	CrashShimExit = "shim_exit"
	// CrashConnectionLost: the shim's connection to the host broke while the process lived on.
	CrashConnectionLost = "connection_lost"
	// CrashUnresponsive: the shim did not answer a call within the call's time limit plus grace.
	CrashUnresponsive = "unresponsive"
	// CrashHealthCheck: the shim failed its periodic health check.
	CrashHealthCheck = "health_check"
	// CrashCompromised: the shim sent a request a correct shim never sends.
	CrashCompromised = "compromised"
	// CrashRunLoop: a run-loop capsule's run export returned, failed or trapped.
	CrashRunLoop = "run_loop_ended"
	// CrashLoadFailed (restarts only): the previous restart's load failed.
	CrashLoadFailed = "load_failed"
)

// CrashReasons is the fixed set of crash reasons; any other value is recorded as OutcomeOther.
var CrashReasons = []string{CrashShimExit, CrashConnectionLost, CrashUnresponsive, CrashHealthCheck,
	CrashCompromised, CrashRunLoop, CrashLoadFailed}

// InvocationBuckets are the buckets of astrid_capsule_invocation_duration_seconds, from 100 µs
// (an export call costs tens of µs) to the default call time limit of 300 s.
var InvocationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Recorder holds the metrics of events the host reports as they happen. Its methods are safe
// for concurrent use and cheap (a label lookup and an atomic add). It is a prometheus.Collector.
type Recorder struct {
	invocations *prometheus.HistogramVec
	crashes     *prometheus.CounterVec
	restarts    *prometheus.CounterVec
	hostCalls   *prometheus.CounterVec
	hostErrors  *prometheus.CounterVec
}

// NewRecorder returns a Recorder with every metric at zero.
func NewRecorder() *Recorder {
	return &Recorder{
		invocations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "astrid_capsule_invocation_duration_seconds",
			Help:    "Time from asking a capsule to run an export or interceptor to its answer (waiting for the capsule's call in progress included), by capsule, kind (export, interceptor) and outcome.",
			Buckets: InvocationBuckets,
		}, []string{"capsule", "kind", "outcome"}),
		crashes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_capsule_crashes_total",
			Help: "Capsule instances that crashed (failed against their will), by capsule and reason class.",
		}, []string{"capsule", "reason"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_capsule_restarts_total",
			Help: "Restarts of crashed capsules (a new instance started in place of the crashed one), by capsule and the reason class of the crash.",
		}, []string{"capsule", "reason"}),
		hostCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_host_function_calls_total",
			Help: "Host function calls made by capsules, by capsule and function.",
		}, []string{"capsule", "function"}),
		hostErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_host_function_errors_total",
			Help: "Host function calls that failed (the guest got an error or a trap), by capsule and function.",
		}, []string{"capsule", "function"}),
	}
}

// Invocation records a call of kind (KindExport, KindInterceptor) to capsule that ended with
// outcome (OutcomeOK, OutcomeCallFailed or one of GuestOutcomes; anything else is recorded as
// OutcomeOther) after d.
func (r *Recorder) Invocation(capsule, kind, outcome string, d time.Duration) {
	r.invocations.WithLabelValues(capsule, kind, Outcome(outcome)).Observe(d.Seconds())
}

// Crash records a crash of capsule of reason class (one of CrashReasons).
func (r *Recorder) Crash(capsule, reason string) {
	r.crashes.WithLabelValues(capsule, crashReason(reason)).Inc()
}

// Restart records a restart of capsule after a crash of reason class (one of CrashReasons).
func (r *Recorder) Restart(capsule, reason string) {
	r.restarts.WithLabelValues(capsule, crashReason(reason)).Inc()
}

// crashReason is reason if it is one of CrashReasons, else OutcomeOther.
func crashReason(reason string) string {
	if slices.Contains(CrashReasons, reason) {
		return reason
	}
	return OutcomeOther
}

// HostCall records n calls of host function function (a name from the host's tables) by
// capsule, failed of which failed.
func (r *Recorder) HostCall(capsule, function string, n, failed int) {
	if n > 0 {
		r.hostCalls.WithLabelValues(capsule, function).Add(float64(n))
	}
	if failed > 0 {
		r.hostErrors.WithLabelValues(capsule, function).Add(float64(failed))
	}
}

// Describe sends the descriptors of the Recorder's metrics.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	r.invocations.Describe(ch)
	r.crashes.Describe(ch)
	r.restarts.Describe(ch)
	r.hostCalls.Describe(ch)
	r.hostErrors.Describe(ch)
}

// Collect sends the Recorder's metrics.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	r.invocations.Collect(ch)
	r.crashes.Collect(ch)
	r.restarts.Collect(ch)
	r.hostCalls.Collect(ch)
	r.hostErrors.Collect(ch)
}
