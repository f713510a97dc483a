package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astrid-go/astrid/host/metrics"
)

// The host's side of its Prometheus metrics (package metrics, docs/metrics.md): the events it
// records as they happen (h.metrics) and the snapshot of its live state each scrape reads.

// RegisterMetrics registers the host's metrics with reg: the events recorded since New, and a
// collector that reads the capsules' and the bus's live state at each scrape.
func (h *Host) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{h.metrics, metrics.NewStateCollector(h.metricsSnapshot)} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register the host's metrics: %w", err)
		}
	}
	return nil
}

// allStates are the states an instance can be in, as metrics name them.
var allStates = []string{StateLoading.String(), StateReady.String(), StateStopped.String(), StateFailed.String()}

// metricsSnapshot reads the host's live state for a scrape.
func (h *Host) metricsSnapshot() metrics.Snapshot {
	insts := h.Instances()
	s := metrics.Snapshot{
		States:            allStates,
		Capsules:          make([]metrics.Capsule, 0, len(insts)),
		Bus:               h.bus.Totals(),
		Subscriptions:     h.bus.Subscriptions(),
		InterceptorQueued: h.dispatch.queued(),
	}
	for _, inst := range insts {
		s.Capsules = append(s.Capsules, inst.metricsState())
	}
	return s
}

// metricsState is the instance's live state for a scrape.
func (i *Instance) metricsState() metrics.Capsule {
	st, _ := i.State()
	c := metrics.Capsule{Name: i.ID(), State: st.String(), InterceptorDropped: i.hooks.dropped.Load()}
	if st == StateReady || st == StateLoading {
		c.ShimPid = i.Pid()
	}
	for _, sub := range i.ipc.stats() {
		c.Subscriptions++
		c.QueuedMessages += sub.Queued
		c.QueuedBytes += uint64(sub.QueuedBytes)
	}
	i.mu.Lock()
	procs := i.procs
	i.mu.Unlock()
	if procs != nil {
		c.Processes = procs.Running()
	}
	return c
}

// queued is how many messages wait on the dispatcher's routes.
func (d *dispatcher) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, r := range d.routes {
		n += len(r.queue)
	}
	return n
}

// recordInvocation records a call of kind (metrics.KindExport, metrics.KindInterceptor) that
// started at start and ended with err.
func (i *Instance) recordInvocation(kind string, start time.Time, err error) {
	i.host.metrics.Invocation(i.ID(), kind, invocationOutcome(err), time.Since(start))
}

// invocationOutcome classes a call's error for metrics: ok, the guest failure's kind, or
// call_failed. The Recorder bounds it (metrics.Outcome): a kind a shim made up is "other".
func invocationOutcome(err error) string {
	var ge *GuestError
	switch {
	case err == nil:
		return metrics.OutcomeOK
	case errors.As(err, &ge):
		return ge.KindName()
	default:
		return metrics.OutcomeCallFailed
	}
}

// recordHostCall records n calls of host function function by the instance, failed of which
// failed.
func (s *hostServices) recordHostCall(function string, n, failed int) {
	s.inst.host.metrics.HostCall(s.inst.ID(), function, n, failed)
}

// failedIf is 1 if err is set, else 0: the failed count of one host function call.
func failedIf(err error) int {
	if err != nil {
		return 1
	}
	return 0
}
