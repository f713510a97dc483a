package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/metrics"
)

// scrape fetches http://addr/metrics and parses it.
func scrape(t *testing.T, addr string) scraped {
	t.Helper()
	resp, err := http.Get("http://" + addr + metrics.MetricsPath)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// scraped are the metric families of one scrape, by name.
type scraped map[string]*dto.MetricFamily

// value is the value of the series of metric name with exactly labels (name=value pairs): a
// counter's or gauge's value, a histogram's sample count; 0 when there is no such series.
func (s scraped) value(name string, labels ...string) float64 {
	fam := s[name]
	if fam == nil {
		return 0
	}
	for _, m := range fam.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	if len(m.Label) != len(labels)/2 {
		return false
	}
	for k := 0; k+1 < len(labels); k += 2 {
		if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == labels[k] && l.GetValue() == labels[k+1] }) {
			return false
		}
	}
	return true
}

// labelValues are the values label takes over the series of metric name.
func (s scraped) labelValues(name, label string) []string {
	var out []string
	if fam := s[name]; fam != nil {
		for _, m := range fam.Metric {
			for _, l := range m.Label {
				if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// serveHostMetrics serves h's metrics on a free loopback port until the test ends, and returns
// the address.
func serveHostMetrics(t *testing.T, h *host.Host) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := h.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	srv, err := metrics.Serve("127.0.0.1:0", reg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	return srv.Addr().String()
}

// TestMetricsCountTraffic: a real host with real shims serves /metrics, and after guest traffic
// (publishes that overflow a subscription, interceptor calls, host function calls that succeed
// and fail, export calls that succeed, fail and trap) and a crash, a scrape finds exactly the
// counts they caused.
func TestMetricsCountTraffic(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	addr := serveHostMetrics(t, h)

	ipc, _ := loadCapsule(t, h, "ipc")
	raw, _ := loadCapsule(t, h, "raw")
	hookDir := capsuleEdited(t, "hook", "hook", func(toml string) string {
		return strings.Replace(toml, `action = "rec"`, `action = "#metrics"`, 1)
	})
	loadCapsule(t, h, hookDir)
	faultyDir := capsuleVariant(t, "faulty", "[restart]\npolicy = \"on-failure\"\nmax_attempts = 2\nbackoff = \"10ms\"\nmax_backoff = \"20ms\"\n")
	faulty, _ := loadCapsule(t, h, faultyDir)

	// Every host event from here on, to account for what the host itself publishes.
	events := h.Bus().Subscribe("astrid.v1.*")
	defer events.Close()
	restarted := h.Bus().Subscribe(host.TopicCapsuleRestarted)
	defer restarted.Close()
	before := scrape(t, addr)
	for _, c := range []string{"ipc", "raw", "hook", "faulty"} {
		if got := before.value("astrid_capsule_state", "capsule", c, "state", "ready"); got != 1 {
			t.Fatalf("astrid_capsule_state{capsule=%q,state=ready} = %v before the traffic, want 1", c, got)
		}
	}

	// Guest traffic: ipc subscribes, publishes more than its queue holds, then polls it empty;
	// and publishes events the hook capsule intercepts.
	const published, intercepted = bus.DefaultQueueMessages + 476, 3
	call := func(inst *host.Instance, export, input string) []byte {
		t.Helper()
		out, err := inst.Call(context.Background(), export, []byte(input), 0)
		if err != nil {
			t.Fatalf("%s %s: %v", inst.ID(), export, err)
		}
		return out
	}
	handle := string(call(ipc, "subscribe", "test.v1.m.*"))
	call(ipc, "publish", fmt.Sprintf(`{"topic":"test.v1.m.x","count":%d}`, published))
	call(ipc, "publish", fmt.Sprintf(`{"topic":"test.v1.event.a","count":%d}`, intercepted))
	waitFor(t, 30*time.Second, "the interceptor calls to be recorded", func() bool {
		return scrape(t, addr).value("astrid_capsule_invocation_duration_seconds", "capsule", "hook", "kind", "interceptor", "outcome", "ok") == intercepted
	})
	queued := scrape(t, addr)
	if got := queued.value("astrid_capsule_queue_messages", "capsule", "ipc"); got != bus.DefaultQueueMessages {
		t.Errorf("astrid_capsule_queue_messages{capsule=ipc} = %v with the queue full, want %d", got, bus.DefaultQueueMessages)
	}
	var polled struct {
		Data   []json.RawMessage `json:"data"`
		Lagged uint64            `json:"lagged"`
	}
	if err := json.Unmarshal(call(ipc, "poll", handle), &polled); err != nil {
		t.Fatal(err)
	}
	if len(polled.Data) != bus.DefaultQueueMessages || polled.Lagged != published-bus.DefaultQueueMessages {
		t.Fatalf("poll: %d messages, lagged %d; want %d and %d", len(polled.Data), polled.Lagged, bus.DefaultQueueMessages, published-bus.DefaultQueueMessages)
	}

	// Host functions that succeed and fail, through the raw capsule.
	if _, err := callRaw(t, raw, "astrid_fs_exists", []byte("missing.txt")); err != nil {
		t.Fatalf("astrid_fs_exists: %v", err)
	}
	out, err := callRaw(t, raw, "astrid_read_file", []byte("missing.txt"))
	if err != nil || len(out) == 0 || out[0] != 1 {
		t.Fatalf("astrid_read_file of a missing file: %q, %v; want a HostResult error", out, err)
	}

	// Export calls: two that succeed, one the guest fails, one that traps.
	call(faulty, "echo", "a")
	call(faulty, "echo", "b")
	var ge *host.GuestError
	if _, err := faulty.Call(context.Background(), "fail", []byte("no"), 0); !errors.As(err, &ge) || ge.KindName() != "guest_error" {
		t.Fatalf("fail: %v, want a guest_error", err)
	}
	_, err = faulty.Call(context.Background(), "panic", nil, 0)
	if !errors.As(err, &ge) {
		t.Fatalf("panic: %v, want a GuestError", err)
	}
	trapKind := ge.KindName()

	// A crash: the shim is killed, and the capsule restarted.
	if err := syscall.Kill(faulty.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if env, err := restarted.Recv(ctx, 1<<20); err != nil || len(env.Messages) != 1 {
		t.Fatalf("waiting for the restart: %v, %d messages", err, len(env.Messages))
	}

	after := scrape(t, addr)
	hostEvents := events.Stats()
	ownDelivered := hostEvents.Delivered + restarted.Stats().Delivered
	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}
	cases := []struct {
		name   string
		labels []string
		want   float64
	}{
		// The bus: the guest's messages and the host's own events; the overflow of ipc's queue;
		// what ipc polled and what the test's own subscriptions received.
		{"astrid_bus_events_published_total", nil, published + intercepted + float64(hostEvents.Matched)},
		{"astrid_bus_receiver_lagged_total", nil, published - bus.DefaultQueueMessages},
		{"astrid_bus_events_delivered_total", nil, bus.DefaultQueueMessages + float64(ownDelivered)},
		// Host functions, counted where the host dispatches them.
		{"astrid_host_function_calls_total", []string{"capsule", "ipc", "function", "astrid_ipc_publish"}, published + intercepted},
		{"astrid_host_function_errors_total", []string{"capsule", "ipc", "function", "astrid_ipc_publish"}, 0},
		{"astrid_host_function_calls_total", []string{"capsule", "ipc", "function", "astrid_ipc_subscribe"}, 1},
		{"astrid_host_function_calls_total", []string{"capsule", "ipc", "function", "astrid_ipc_poll"}, 1},
		{"astrid_host_function_calls_total", []string{"capsule", "raw", "function", "astrid_fs_exists"}, 1},
		{"astrid_host_function_errors_total", []string{"capsule", "raw", "function", "astrid_fs_exists"}, 0},
		{"astrid_host_function_calls_total", []string{"capsule", "raw", "function", "astrid_read_file"}, 1},
		{"astrid_host_function_errors_total", []string{"capsule", "raw", "function", "astrid_read_file"}, 1},
		// Calls: exports by outcome, interceptors.
		{"astrid_capsule_invocation_duration_seconds", []string{"capsule", "faulty", "kind", "export", "outcome", "ok"}, 2},
		{"astrid_capsule_invocation_duration_seconds", []string{"capsule", "faulty", "kind", "export", "outcome", "guest_error"}, 1},
		{"astrid_capsule_invocation_duration_seconds", []string{"capsule", "faulty", "kind", "export", "outcome", trapKind}, 1},
		{"astrid_capsule_invocation_duration_seconds", []string{"capsule", "ipc", "kind", "export", "outcome", "ok"}, 4},
		{"astrid_capsule_invocation_duration_seconds", []string{"capsule", "hook", "kind", "interceptor", "outcome", "ok"}, intercepted},
		// The crash and the restart, by reason class.
		{"astrid_capsule_crashes_total", []string{"capsule", "faulty", "reason", metrics.CrashShimExit}, 1},
		{"astrid_capsule_restarts_total", []string{"capsule", "faulty", "reason", metrics.CrashShimExit}, 1},
	}
	for _, c := range cases {
		t.Run(c.name+"{"+strings.Join(c.labels, ",")+"}", func(t *testing.T) {
			if got := delta(c.name, c.labels...); got != c.want {
				t.Errorf("%s{%s} went up by %v, want %v", c.name, strings.Join(c.labels, ","), got, c.want)
			}
		})
	}
	// Live state after the crash: the restarted capsule is ready, ipc's queue is empty, and only
	// the crash's class is a crash reason.
	if got := after.value("astrid_capsule_state", "capsule", "faulty", "state", "ready"); got != 1 {
		t.Errorf("astrid_capsule_state{capsule=faulty,state=ready} = %v after the restart, want 1", got)
	}
	if got := after.value("astrid_capsule_queue_messages", "capsule", "ipc"); got != 0 {
		t.Errorf("astrid_capsule_queue_messages{capsule=ipc} = %v after the poll, want 0", got)
	}
	if got := after.labelValues("astrid_capsule_crashes_total", "reason"); !slices.Equal(got, []string{metrics.CrashShimExit}) {
		t.Errorf("crash reasons %v, want only %s", got, metrics.CrashShimExit)
	}
	if got := after.value("astrid_capsule_shim_resident_bytes", "capsule", "faulty"); got <= 0 {
		t.Errorf("astrid_capsule_shim_resident_bytes{capsule=faulty} = %v, want the shim's RSS", got)
	}
}

// TestRunMetricsFlag: `astrid-host run --metrics 127.0.0.1:0` serves the metrics of the running
// host (with the Go runtime's) on the port its log names, and they follow a crash of a capsule's
// shim; a bad or busy address is refused at start with an error naming it.
func TestRunMetricsFlag(t *testing.T) {
	t.Run("serves", func(t *testing.T) {
		run := startRun(t, "--state", t.TempDir(), "--metrics", "127.0.0.1:0", capsules["hello"], capsules["faulty"])
		m := regexp.MustCompile(`serving metrics: addr=(127\.0\.0\.1:\d+) path=/metrics`).FindStringSubmatch(run.logText())
		if m == nil {
			t.Fatalf("the log does not say where metrics are served:\n%s", run.logText())
		}
		addr := m[1]
		s := scrape(t, addr)
		for _, c := range []string{"hello", "faulty"} {
			if got := s.value("astrid_capsule_state", "capsule", c, "state", "ready"); got != 1 {
				t.Errorf("astrid_capsule_state{capsule=%q,state=ready} = %v, want 1", c, got)
			}
		}
		if s["go_goroutines"] == nil || s["process_resident_memory_bytes"] == nil {
			t.Errorf("the Go runtime's and the process's metrics are missing")
		}
		if err := syscall.Kill(run.pids["faulty"], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the restart to show in the metrics", func() bool {
			s = scrape(t, addr)
			return s.value("astrid_capsule_restarts_total", "capsule", "faulty", "reason", metrics.CrashShimExit) == 1 &&
				s.value("astrid_capsule_state", "capsule", "faulty", "state", "ready") == 1
		})
		if got := s.value("astrid_capsule_crashes_total", "capsule", "faulty", "reason", metrics.CrashShimExit); got != 1 {
			t.Errorf("astrid_capsule_crashes_total{faulty,shim_exit} = %v, want 1", got)
		}
		if got := s.value("astrid_capsule_crashes_total", "capsule", "hello", "reason", metrics.CrashShimExit); got != 0 {
			t.Errorf("astrid_capsule_crashes_total{hello,shim_exit} = %v, want 0", got)
		}
		if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := run.wait(t, runShutdownBound); err != nil {
			t.Fatalf("astrid-host run after SIGTERM: %v; log:\n%s", err, run.logText())
		}
		if _, err := http.Get("http://" + addr + metrics.MetricsPath); err == nil {
			t.Errorf("the metrics endpoint still answers after the host stopped")
		}
	})

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	refused := []struct {
		name, addr string
		want       []string
	}{
		{"no port", "127.0.0.1", []string{`--metrics "127.0.0.1"`, "want HOST:PORT"}},
		{"port out of range", "127.0.0.1:70000", []string{`the port "70000" is not a number from 0 to 65535`}},
		{"not a host", "bad_host:9464", []string{`"bad_host" is neither an IP address nor a host name`}},
		{"address in use", busy.Addr().String(), []string{"error: --metrics: serve metrics on " + busy.Addr().String(), "address already in use"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			res := runCLI(t, t.TempDir(), "run", "--metrics", c.addr, capsules["hello"])
			if res.code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", res.code, res.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
			if strings.Contains(res.stderr, "capsule loaded") {
				t.Errorf("capsules were loaded before the address was refused:\n%s", res.stderr)
			}
		})
	}
}
