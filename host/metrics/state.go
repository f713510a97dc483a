package metrics

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astrid-go/astrid/bus"
)

// Snapshot is the host's live state as one scrape sees it.
type Snapshot struct {
	// States are the names of every state an instance can be in, so that each capsule reports
	// all of them (0 for the states it is not in).
	States []string
	// Capsules are the host's instances, one entry each (a capsule has several while a restart
	// or a reload overlaps them; their values are added up under the capsule's name).
	Capsules []Capsule
	// Bus are the bus's cumulative counts; Subscriptions its open subscriptions.
	Bus           bus.Totals
	Subscriptions int
	// InterceptorQueued is how many bus messages wait for interceptors, over every route.
	InterceptorQueued int
}

// Capsule is one instance's live state.
type Capsule struct {
	Name  string // the capsule id (package.name)
	State string // one of Snapshot.States
	// ShimPid is the pid of the instance's running shim, 0 when none runs.
	ShimPid int
	// Subscriptions, QueuedMessages and QueuedBytes are over the instance's live subscriptions.
	Subscriptions  int
	QueuedMessages uint64
	QueuedBytes    uint64
	// Processes is how many processes the capsule spawned are running now.
	Processes int
	// InterceptorDropped counts the bus messages for the instance's interceptors dropped because
	// their queue was full (since the instance started).
	InterceptorDropped uint64
}

// StateCollector reports a Snapshot taken at each scrape. It is a prometheus.Collector.
type StateCollector struct {
	snapshot func() Snapshot
	// rss reads a process's resident set size in bytes (ShimRSS; replaced by tests).
	rss func(pid int) (uint64, error)
}

// NewStateCollector returns a collector that calls snapshot at every scrape.
func NewStateCollector(snapshot func() Snapshot) *StateCollector {
	return &StateCollector{snapshot: snapshot, rss: ShimRSS}
}

var (
	descState = prometheus.NewDesc("astrid_capsule_state",
		"Instances of the capsule in each state (loading, ready, stopped, failed); normally 1 for its current state and 0 for the others.",
		[]string{"capsule", "state"}, nil)
	descSubs = prometheus.NewDesc("astrid_capsule_subscriptions",
		"Live bus subscriptions of the capsule (its interceptor subscriptions included).", []string{"capsule"}, nil)
	descQueued = prometheus.NewDesc("astrid_capsule_queue_messages",
		"Messages waiting in the capsule's subscription queues.", []string{"capsule"}, nil)
	descQueuedBytes = prometheus.NewDesc("astrid_capsule_queue_bytes",
		"Payload bytes waiting in the capsule's subscription queues.", []string{"capsule"}, nil)
	descProcs = prometheus.NewDesc("astrid_capsule_processes",
		"Processes the capsule spawned that are running now.", []string{"capsule"}, nil)
	descRSS = prometheus.NewDesc("astrid_capsule_shim_resident_bytes",
		"Resident set size of the capsule's shim process (from /proc/PID/statm).", []string{"capsule"}, nil)
	descDropped = prometheus.NewDesc("astrid_interceptor_dropped_total",
		"Bus messages for the capsule's interceptors dropped because their queue was full (counted per instance: a restart starts again from 0).",
		[]string{"capsule"}, nil)
	descPublished = prometheus.NewDesc("astrid_bus_events_published_total",
		"Messages published on the bus.", nil, nil)
	descDelivered = prometheus.NewDesc("astrid_bus_events_delivered_total",
		"Messages delivered from subscription queues to subscribers (capsules' poll and recv, the host's own subscribers).", nil, nil)
	descLagged = prometheus.NewDesc("astrid_bus_receiver_lagged_total",
		"Messages evicted from full subscription queues (the lagged counts of envelopes), closed subscriptions included.", nil, nil)
	descRefused = prometheus.NewDesc("astrid_bus_events_refused_total",
		"Messages refused to their publisher because the bus to other hosts (--bus, --bus-listen) could not take them; they were delivered nowhere.", nil, nil)
	descBusSubs = prometheus.NewDesc("astrid_bus_subscriptions",
		"Open subscriptions on the bus (capsules' and the host's).", nil, nil)
	descInterceptorQueued = prometheus.NewDesc("astrid_interceptor_queue_messages",
		"Bus messages waiting to be dispatched to interceptors.", nil, nil)
)

// Describe sends the descriptors of the collector's metrics.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descSubs, descQueued, descQueuedBytes, descProcs, descRSS,
		descDropped, descPublished, descDelivered, descLagged, descRefused, descBusSubs, descInterceptorQueued} {
		ch <- d
	}
}

// capsuleSums are a capsule's values added up over its instances.
type capsuleSums struct {
	states                            map[string]int
	subs, procs                       int
	queued, queuedBytes, rss, dropped uint64
	rssKnown                          bool
}

// Collect takes a snapshot and sends its metrics.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	var order []string
	sums := map[string]*capsuleSums{}
	for _, cp := range s.Capsules {
		sum := sums[cp.Name]
		if sum == nil {
			sum = &capsuleSums{states: map[string]int{}}
			sums[cp.Name] = sum
			order = append(order, cp.Name)
		}
		sum.states[cp.State]++
		sum.subs += cp.Subscriptions
		sum.procs += cp.Processes
		sum.queued += cp.QueuedMessages
		sum.queuedBytes += cp.QueuedBytes
		sum.dropped += cp.InterceptorDropped
		if cp.ShimPid > 0 {
			if rss, err := c.rss(cp.ShimPid); err == nil {
				sum.rss += rss
				sum.rssKnown = true
			}
		}
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, name := range order {
		sum := sums[name]
		for _, st := range s.States {
			gauge(descState, float64(sum.states[st]), name, st)
		}
		gauge(descSubs, float64(sum.subs), name)
		gauge(descQueued, float64(sum.queued), name)
		gauge(descQueuedBytes, float64(sum.queuedBytes), name)
		gauge(descProcs, float64(sum.procs), name)
		if sum.rssKnown {
			gauge(descRSS, float64(sum.rss), name)
		}
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(sum.dropped), name)
	}
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(s.Bus.Published))
	ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(s.Bus.Delivered))
	ch <- prometheus.MustNewConstMetric(descLagged, prometheus.CounterValue, float64(s.Bus.Lagged))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(s.Bus.Refused))
	gauge(descBusSubs, float64(s.Subscriptions))
	gauge(descInterceptorQueued, float64(s.InterceptorQueued))
}

// maxStatmBytes bounds the read of /proc/PID/statm (seven decimal numbers).
const maxStatmBytes = 256

// ShimRSS returns the resident set size in bytes of process pid: the second field of
// /proc/PID/statm (resident pages) times the page size.
func ShimRSS(pid int) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, maxStatmBytes)
	n, err := f.Read(buf)
	if err != nil {
		return 0, fmt.Errorf("read /proc/%d/statm: %w", pid, err)
	}
	return parseStatm(buf[:n], uint64(os.Getpagesize()))
}

// parseStatm reads the resident pages (second field) of a statm line, in bytes.
func parseStatm(line []byte, pageSize uint64) (uint64, error) {
	fields := bytes.Fields(line)
	if len(fields) < 2 {
		return 0, fmt.Errorf("statm %q: want at least 2 fields", line)
	}
	pages, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("statm %q: resident pages: %w", line, err)
	}
	return pages * pageSize, nil
}
