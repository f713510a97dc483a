package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/astrid-go/astrid/bus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckAddr(t *testing.T) {
	cases := []struct {
		addr string
		want string // "" = valid; else a part of the error
	}{
		{"127.0.0.1:9464", ""},
		{":9464", ""},
		{"localhost:0", ""},
		{"[::1]:65535", ""},
		{"metrics.example-host.internal:80", ""},
		{"", "want HOST:PORT"},
		{"9464", "want HOST:PORT"},
		{"127.0.0.1", "want HOST:PORT"},
		{"127.0.0.1:", "is not a number from 0 to 65535"},
		{"127.0.0.1:65536", "is not a number from 0 to 65535"},
		{"127.0.0.1:http", "is not a number from 0 to 65535"},
		{"127.0.0.1:+80", "is not a number from 0 to 65535"},
		{"127.0.0.1:080", "is not a number from 0 to 65535"},
		{"bad_host:80", "neither an IP address nor a host name"},
		{"-bad:80", "neither an IP address nor a host name"},
		{"a..b:80", "neither an IP address nor a host name"},
		{"host/path:80", "neither an IP address nor a host name"},
		{strings.Repeat("a", 64) + ":80", "neither an IP address nor a host name"},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			err := CheckAddr(c.addr)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("CheckAddr(%q) = %v, want nil", c.addr, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("CheckAddr(%q) = %v, want an error saying %q", c.addr, err, c.want)
			}
		})
	}
}

func TestParseStatm(t *testing.T) {
	cases := []struct {
		line    string
		want    uint64
		wantErr bool
	}{
		{"1000 250 100 10 0 300 0\n", 250 * 4096, false},
		{"1 0 0 0 0 0 0", 0, false},
		{"1000", 0, true},
		{"1000 x 1", 0, true},
		{"", 0, true},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, err := parseStatm([]byte(c.line), 4096)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("parseStatm(%q) = %d, %v; want %d, error %v", c.line, got, err, c.want, c.wantErr)
			}
		})
	}
	t.Run("this process", func(t *testing.T) {
		rss, err := ShimRSS(os.Getpid())
		if err != nil || rss == 0 {
			t.Fatalf("ShimRSS(self) = %d, %v; want this process's RSS", rss, err)
		}
	})
}

// TestLabelsBounded: values outside the fixed classes never become labels, whatever the host
// passes (a kind number a compromised shim sent, a crash reason's free text).
func TestLabelsBounded(t *testing.T) {
	r := NewRecorder()
	r.Invocation("c", KindExport, "kind(12345)", time.Millisecond)
	r.Invocation("c", KindExport, "timeout", time.Millisecond)
	r.Invocation("c", KindExport, OutcomeOK, time.Millisecond)
	r.Crash("c", "the shim (pid 42) was killed by signal killed")
	r.Crash("c", CrashShimExit)
	r.Restart("c", "anything a guest wrote")
	cases := []struct {
		metric string
		labels []string
		want   float64
	}{
		{"astrid_capsule_invocation_duration_seconds", []string{"c", KindExport, OutcomeOther}, 1},
		{"astrid_capsule_invocation_duration_seconds", []string{"c", KindExport, "timeout"}, 1},
		{"astrid_capsule_invocation_duration_seconds", []string{"c", KindExport, OutcomeOK}, 1},
		{"astrid_capsule_crashes_total", []string{"c", OutcomeOther}, 1},
		{"astrid_capsule_crashes_total", []string{"c", CrashShimExit}, 1},
		{"astrid_capsule_restarts_total", []string{"c", OutcomeOther}, 1},
	}
	for _, c := range cases {
		t.Run(c.metric+strings.Join(c.labels, ","), func(t *testing.T) {
			if got := series(t, r, c.metric, c.labels...); got != c.want {
				t.Fatalf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
			}
		})
	}
	if n := testutil.CollectAndCount(r, "astrid_capsule_invocation_duration_seconds"); n != 3 {
		t.Errorf("%d invocation series, want 3 (other, timeout, ok)", n)
	}
	if n := testutil.CollectAndCount(r, "astrid_capsule_crashes_total"); n != 2 {
		t.Errorf("%d crash series, want 2 (other, shim_exit)", n)
	}
}

// series gathers c and returns the value of metric's series whose label values are labels, in
// order: a counter's or gauge's value, a histogram's sample count; -1 if there is none.
func series(t *testing.T, c prometheus.Collector, metric string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != metric {
			continue
		}
	next:
		for _, m := range f.Metric {
			if len(m.Label) != len(labels) {
				continue
			}
			// Gather sorts labels by name; compare as sets of values.
			for _, l := range m.Label {
				if !slices.Contains(labels, l.GetValue()) {
					continue next
				}
			}
			switch {
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			case m.Counter != nil:
				return m.Counter.GetValue()
			default:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

// TestStateCollector: instances of one capsule are added up under its name, every state is
// reported, and the bus totals pass through.
func TestStateCollector(t *testing.T) {
	snap := Snapshot{
		States: []string{"loading", "ready", "stopped", "failed"},
		Capsules: []Capsule{
			{Name: "a", State: "failed", ShimPid: 0, Subscriptions: 1, QueuedMessages: 5, QueuedBytes: 50, InterceptorDropped: 2},
			{Name: "a", State: "ready", ShimPid: 7, Subscriptions: 2, QueuedMessages: 3, QueuedBytes: 30, Processes: 1, InterceptorDropped: 1},
			{Name: "b", State: "loading", ShimPid: 8},
		},
		Bus:               bus.Totals{Published: 10, Delivered: 6, Lagged: 3},
		Subscriptions:     4,
		InterceptorQueued: 2,
	}
	c := NewStateCollector(func() Snapshot { return snap })
	c.rss = func(pid int) (uint64, error) {
		if pid == 7 {
			return 1 << 20, nil
		}
		return 0, errors.New("no such process")
	}
	want := `
# HELP astrid_bus_events_published_total Messages published on the bus.
# TYPE astrid_bus_events_published_total counter
astrid_bus_events_published_total 10
# HELP astrid_bus_receiver_lagged_total Messages evicted from full subscription queues (the lagged counts of envelopes), closed subscriptions included.
# TYPE astrid_bus_receiver_lagged_total counter
astrid_bus_receiver_lagged_total 3
# HELP astrid_capsule_queue_messages Messages waiting in the capsule's subscription queues.
# TYPE astrid_capsule_queue_messages gauge
astrid_capsule_queue_messages{capsule="a"} 8
astrid_capsule_queue_messages{capsule="b"} 0
# HELP astrid_capsule_shim_resident_bytes Resident set size of the capsule's shim process (from /proc/PID/statm).
# TYPE astrid_capsule_shim_resident_bytes gauge
astrid_capsule_shim_resident_bytes{capsule="a"} 1.048576e+06
# HELP astrid_capsule_state Instances of the capsule in each state (loading, ready, stopped, failed); normally 1 for its current state and 0 for the others.
# TYPE astrid_capsule_state gauge
astrid_capsule_state{capsule="a",state="failed"} 1
astrid_capsule_state{capsule="a",state="loading"} 0
astrid_capsule_state{capsule="a",state="ready"} 1
astrid_capsule_state{capsule="a",state="stopped"} 0
astrid_capsule_state{capsule="b",state="failed"} 0
astrid_capsule_state{capsule="b",state="loading"} 1
astrid_capsule_state{capsule="b",state="ready"} 0
astrid_capsule_state{capsule="b",state="stopped"} 0
# HELP astrid_interceptor_dropped_total Bus messages for the capsule's interceptors dropped because their queue was full (counted per instance: a restart starts again from 0).
# TYPE astrid_interceptor_dropped_total counter
astrid_interceptor_dropped_total{capsule="a"} 3
astrid_interceptor_dropped_total{capsule="b"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "astrid_bus_events_published_total", "astrid_bus_receiver_lagged_total",
		"astrid_capsule_queue_messages", "astrid_capsule_shim_resident_bytes", "astrid_capsule_state", "astrid_interceptor_dropped_total"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	if got := series(t, c, "astrid_interceptor_queue_messages"); got != 2 {
		t.Errorf("astrid_interceptor_queue_messages = %v, want 2", got)
	}
}

// serve serves a registry with one counter on a free port until the test ends.
func serve(t *testing.T) *Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "astrid_test_total", Help: "A test counter."}))
	srv, err := Serve("127.0.0.1:0", reg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// TestServerPaths: the endpoint serves /metrics and /healthz to GET, and nothing else.
func TestServerPaths(t *testing.T) {
	srv := serve(t)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/metrics", 200, "astrid_test_total 0"},
		{"GET", "/healthz", 200, "ok"},
		{"HEAD", "/metrics", 200, ""},
		{"POST", "/metrics", 405, ""},
		{"GET", "/", 404, ""},
		{"GET", "/debug/pprof/", 404, ""},
		{"GET", "/metrics/x", 404, ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, err := http.NewRequest(c.method, "http://"+srv.Addr().String()+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
				t.Fatalf("%s %s: %s %q; want %d containing %q", c.method, c.path, resp.Status, body, c.status, c.body)
			}
		})
	}
}

// TestServerBindError: an address in use fails at once, naming it.
func TestServerBindError(t *testing.T) {
	srv := serve(t)
	_, err := Serve(srv.Addr().String(), prometheus.NewRegistry(), hclog.NewNullLogger())
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "serve metrics on "+srv.Addr().String()) {
		t.Fatalf("Serve on an address in use: %v; want an error naming it and saying it is in use", err)
	}
	if _, err := Serve("nonsense", prometheus.NewRegistry(), hclog.NewNullLogger()); err == nil || !strings.Contains(err.Error(), "want HOST:PORT") {
		t.Fatalf("Serve(nonsense) = %v, want the address refused", err)
	}
}

// TestServerSlowClient: a client that never finishes its request headers is cut off after
// ReadHeaderTimeout rather than holding a connection for ever (a slowloris).
func TestServerSlowClient(t *testing.T) {
	srv := serve(t)
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn.SetReadDeadline(start.Add(ReadHeaderTimeout + 10*time.Second))
	_, err = bufio.NewReader(conn).ReadString('\n')
	took := time.Since(start)
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		t.Fatalf("the server still held the half-sent request after %s", took)
	}
	if took < ReadHeaderTimeout-time.Second {
		t.Fatalf("the connection ended after %s (%v), before ReadHeaderTimeout", took, err)
	}
}
