package host

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/topics"
	"github.com/astrid-go/astrid/shared/logtext"
)

// The interceptor dispatcher (upstream's EventDispatcher) runs the [[interceptor]]s of capsules
// without a run export: every message published on the bus whose topic matches one of their
// events calls their astrid_hook_trigger export. docs/architecture.md#interceptors describes it.
//
//   - The bus calls observe for every message, in the publisher's goroutine (bus.Options.Observer);
//     observe matches the topic against a snapshot of the Ready capsules' interceptors (rebuilt
//     on every state change) and enqueues the message on a route without blocking.
//   - A route is an ordered queue of at most InterceptorQueueCapacity messages. One match goes to
//     the capsule's own route (publish order kept per capsule, as upstream's per-capsule queue);
//     several matches form a chain whose route is keyed by its steps, run in ascending priority.
//     A message that finds its route full is dropped, counted and reported on
//     TopicInterceptorDropped.
//   - Each route with work has one worker goroutine, started when the route gets its first
//     message and ended when its queue is empty; the dispatcher waits for all of them at
//     Shutdown.

// InterceptorQueueCapacity is how many messages one route (a capsule's queue, or a chain's) holds
// waiting for its interceptors: 256, as upstream's per-capsule queue.
const InterceptorQueueCapacity = 256

// maxRoutes bounds the routes with work at once (distinct capsules and chains with messages
// waiting); a message that would need one more is dropped and reported like one that finds its
// queue full.
const maxRoutes = 1024

// dropReportInterval is the shortest time between two reports of dropped messages, so a report
// that is itself intercepted by a full queue cannot flood the bus.
const dropReportInterval = time.Second

// TopicInterceptorDropped is published when messages for interceptors were dropped because
// their queue was full (interceptorDrop is its data). Reports come at most once a second, each
// counting the drops since the previous one.
const TopicInterceptorDropped = "astrid.v1.interceptor.dropped"

// hook is one [[interceptor]] of a Ready capsule without a run export.
type hook struct {
	inst     *Instance
	event    string
	action   string
	priority int
}

// dispatchItem is one message waiting on a route, with the interceptors it runs through.
type dispatchItem struct {
	msg   bus.Message
	steps []hook
}

// route is an ordered queue of messages for the same interceptors.
type route struct {
	key   string
	steps []hook // for reports: the interceptors of the route's first message
	queue []dispatchItem
}

// interceptorDrop is the data of TopicInterceptorDropped.
type interceptorDrop struct {
	// CapsuleID and Instance name the capsule whose queue was full: the first of a chain.
	CapsuleID string `json:"capsule_id"`
	Instance  string `json:"instance"`
	Action    string `json:"action"`
	// Chain lists the capsules of the chain, in order, when the queue was a chain's.
	Chain []string `json:"chain,omitempty"`
	// Dropped is how many messages were dropped since the previous report; DroppedTotal how many
	// the capsule (the chain's first) has had dropped in all.
	Dropped      uint64 `json:"dropped"`
	DroppedTotal uint64 `json:"dropped_total"`
	Capacity     int    `json:"capacity"`
}

// InterceptorStats are the counters of a capsule's interceptors.
type InterceptorStats struct {
	// Invoked counts the calls of astrid_hook_trigger (for bus messages and for
	// astrid_trigger_hook); Failed those that failed (a trap, a timeout, an input too large).
	Invoked uint64
	Failed  uint64
	// Dropped counts the bus messages dropped because the capsule's queue (or the queue of a
	// chain it starts) was full.
	Dropped uint64
}

// interceptorCounters are an instance's InterceptorStats, updated as they happen.
type interceptorCounters struct {
	invoked, failed, dropped atomic.Uint64
}

// InterceptorStats reports the counters of the capsule's interceptors.
func (i *Instance) InterceptorStats() InterceptorStats {
	return InterceptorStats{Invoked: i.hooks.invoked.Load(), Failed: i.hooks.failed.Load(), Dropped: i.hooks.dropped.Load()}
}

// dispatcher is the host's interceptor dispatcher.
type dispatcher struct {
	host *Host
	// ctx ends when the host shuts down: waits for a call slot give up.
	ctx    context.Context
	cancel context.CancelFunc

	refreshMu sync.Mutex
	table     atomic.Pointer[[]hook] // sorted by priority, stably (load order, then manifest order)

	mu      sync.Mutex // guards routes and closed
	routes  map[string]*route
	closed  bool
	workers sync.WaitGroup // route workers and the drop reporter

	dropMu    sync.Mutex // guards drops and reporting
	drops     map[string]*interceptorDrop
	reporting bool // the reporter goroutine is running
	dropWake  chan struct{}

	graph waitGraph
}

func newDispatcher(h *Host) *dispatcher {
	d := &dispatcher{host: h, routes: map[string]*route{}, drops: map[string]*interceptorDrop{}, dropWake: make(chan struct{}, 1)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.table.Store(&[]hook{})
	return d
}

// refresh rebuilds the snapshot of interceptors from the instances that are Ready and have no
// run export. It is called after every state change.
func (d *dispatcher) refresh() {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	var t []hook
	for _, inst := range d.host.Instances() {
		if st, _ := inst.State(); st != StateReady || !inst.dispatched() {
			continue
		}
		for _, ic := range inst.manifest.Interceptors {
			t = append(t, hook{inst: inst, event: ic.Event, action: ic.Action, priority: ic.Priority})
		}
	}
	slices.SortStableFunc(t, func(a, b hook) int { return cmp.Compare(a.priority, b.priority) })
	d.table.Store(&t)
}

// dispatched reports whether the instance's interceptors are dispatched: it has no run export
// and exports astrid_hook_trigger.
func (i *Instance) dispatched() bool {
	return !i.runExport && slices.Contains(i.Exports(), HookExport)
}

// matching returns the interceptors whose event matches topic, in priority order, leaving out
// those of skip (nil for none).
func (d *dispatcher) matching(topic string, skip *Instance) []hook {
	var out []hook
	for _, h := range *d.table.Load() {
		if h.inst != skip && topics.Match(h.event, topic) {
			out = append(out, h)
		}
	}
	return out
}

// observe is the bus's observer: it routes m to the interceptors it matches. It never blocks.
func (d *dispatcher) observe(m *bus.Message) {
	if len(*d.table.Load()) == 0 {
		return
	}
	steps := d.matching(m.Topic, nil)
	if len(steps) == 0 {
		return
	}
	key := routeKey(steps)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return // shutting down: nothing runs any more
	}
	r := d.routes[key]
	if r == nil && len(d.routes) >= maxRoutes {
		d.mu.Unlock()
		d.dropped(key, steps)
		return
	}
	if r == nil {
		r = &route{key: key, steps: steps}
		d.routes[key] = r
		d.workers.Add(1)
		go d.work(r)
	}
	if len(r.queue) >= InterceptorQueueCapacity {
		d.mu.Unlock()
		d.dropped(key, steps)
		return
	}
	r.queue = append(r.queue, dispatchItem{msg: *m, steps: steps})
	for _, st := range steps {
		st.inst.hookWork.add()
	}
	d.mu.Unlock()
}

// routeKey names the route of a message with these interceptors: the capsule instance for one
// (its queue keeps publish order across its interceptors, as upstream's), the ordered steps for
// a chain.
func routeKey(steps []hook) string {
	if len(steps) == 1 {
		return steps[0].inst.ipc.sourceID
	}
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.inst.ipc.sourceID)
		b.WriteByte('\x00')
		b.WriteString(s.action)
		b.WriteByte('\x00')
	}
	return b.String()
}

// work runs a route's messages in order until its queue is empty, then ends.
func (d *dispatcher) work(r *route) {
	defer d.workers.Done()
	for {
		d.mu.Lock()
		if len(r.queue) == 0 {
			delete(d.routes, r.key)
			d.mu.Unlock()
			return
		}
		it := r.queue[0]
		r.queue[0] = dispatchItem{}
		r.queue = r.queue[1:]
		d.mu.Unlock()
		d.run(it)
		for _, st := range it.steps {
			st.inst.hookWork.done()
		}
	}
}

// run passes one message through its interceptors in order: Continue passes its bytes on
// (empty bytes keep the payload), Final and Deny end the chain, and a failed invocation is
// logged and skipped.
func (d *dispatcher) run(it dispatchItem) {
	payload := bus.GuestBytes(it.msg.Payload)
	caller := newCallerContext(&it.msg)
	for _, st := range it.steps {
		if d.ctx.Err() != nil {
			return // the host is shutting down
		}
		if s, _ := st.inst.State(); s != StateReady {
			continue // it stopped or failed since the message was published
		}
		v, err := st.inst.invokeInterceptor(d.ctx, st.action, payload, caller)
		if err != nil && d.ctx.Err() != nil {
			return // the host is shutting down: the failure is its doing
		}
		if err != nil {
			st.inst.log.Warn("interceptor failed; the chain goes on", "action", logtext.Escape(st.action),
				"topic", logtext.Escape(it.msg.Topic), "error", err.Error())
			continue
		}
		switch v.Kind {
		case Continue:
			if len(v.Data) > 0 {
				payload = v.Data
			}
		case Final:
			st.inst.log.Debug("interceptor answered the event; the chain stops", "action", logtext.Escape(st.action),
				"topic", logtext.Escape(it.msg.Topic), "bytes", len(v.Data))
			return
		case Deny:
			st.inst.log.Warn("interceptor denied the event; the chain stops", "action", logtext.Escape(st.action),
				"topic", logtext.Escape(it.msg.Topic), "reason", logtext.Escape(v.Reason))
			return
		}
	}
}

// dropped counts a message dropped for the route key and has it reported.
func (d *dispatcher) dropped(key string, steps []hook) {
	first := steps[0].inst
	total := first.hooks.dropped.Add(1)
	d.dropMu.Lock()
	defer d.dropMu.Unlock()
	rep := d.drops[key]
	if rep == nil {
		rep = &interceptorDrop{CapsuleID: first.ID(), Instance: first.ipc.sourceID, Action: steps[0].action, Capacity: InterceptorQueueCapacity}
		if len(steps) > 1 {
			for _, s := range steps {
				rep.Chain = append(rep.Chain, s.inst.ID())
			}
		}
		d.drops[key] = rep
	}
	rep.Dropped++
	rep.DroppedTotal = total
	if !d.reporting {
		d.mu.Lock() // the reporter is a worker: none starts once the dispatcher is closed
		if !d.closed {
			d.reporting = true
			d.workers.Add(1)
			go d.report()
		}
		d.mu.Unlock()
	}
	select {
	case d.dropWake <- struct{}{}:
	default:
	}
}

// report publishes the drop reports as they come, at most once per dropReportInterval, until
// there are none left or the host shuts down.
func (d *dispatcher) report() {
	defer d.workers.Done()
	for {
		select {
		case <-d.dropWake:
		case <-d.ctx.Done():
			d.dropMu.Lock()
			d.reporting = false
			d.dropMu.Unlock()
			return
		}
		d.dropMu.Lock()
		reps := d.drops
		d.drops = map[string]*interceptorDrop{}
		d.dropMu.Unlock()
		for _, rep := range reps {
			d.host.log.Warn("interceptor queue full: messages dropped", "capsule", rep.CapsuleID, "action", logtext.Escape(rep.Action),
				"dropped", rep.Dropped, "dropped_total", rep.DroppedTotal, "capacity", rep.Capacity)
			d.host.publishEvent(TopicInterceptorDropped, rep)
		}
		t := time.NewTimer(dropReportInterval)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
		}
		d.dropMu.Lock()
		if len(d.drops) == 0 || d.ctx.Err() != nil {
			d.reporting = false
			d.dropMu.Unlock()
			return
		}
		d.dropMu.Unlock()
	}
}

// close stops dispatching (messages published from now on run no interceptor) and makes waits
// for a call slot give up; wait then waits for the workers, which end once the instances have
// stopped.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
}

// wait waits for every goroutine of the dispatcher to end.
func (d *dispatcher) wait() { d.workers.Wait() }
