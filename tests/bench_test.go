package tests

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/httpgate"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/goplugin"
	"github.com/astrid-go/astrid/shared/pb"
)

// The benchmarks compare the runtime against a baseline measured in the same run: rawshim, a
// go-plugin server speaking the same protocol with nothing behind it (tests/rawshim). Each
// benchmark alternates the two so drift on a shared machine hits both alike, and reports both
// times and their ratio (the figure docs/architecture.md#performance-targets sets targets for).

var (
	rawShimOnce sync.Once
	rawShimBin  string
	rawShimErr  error
)

// rawShim builds tests/rawshim once and returns its path.
func rawShim(b testing.TB) string {
	rawShimOnce.Do(func() {
		rawShimBin = filepath.Join(binDir, "rawshim")
		rawShimErr = goBuild(nil, "-o", rawShimBin, "./tests/rawshim")
	})
	if rawShimErr != nil {
		b.Fatalf("build rawshim: %v\n%s", rawShimErr, buildLogs.String())
	}
	return rawShimBin
}

// rawClient is the host's side of a rawshim: its gRPC client, and Invoke over its call
// connection as the host calls astrid-shim.
type rawClient struct {
	*goplugin.ShimClient
	calls *callwire.HostEnd
}

// Invoke makes one call on rawshim's call connection.
func (r *rawClient) Invoke(ctx context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
	return r.calls.Invoke(ctx, req)
}

// startRaw starts rawshim with the client settings astrid-host uses for astrid-shim, and returns
// its pid too (the only process its host services accept). artefact, if given, is handed over as
// the host hands a shim its cached artefact (sent on the channel before the shim starts).
func startRaw(b *testing.B, artefact ...*os.File) (*plugin.Client, *rawClient, int) {
	cmd := exec.Command(rawShim(b))
	cmd.Env = []string{"TMPDIR=" + os.TempDir()}
	callsHost, callsShim, err := callwire.Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer callsShim.Close()
	var callsEnv string
	cmd.ExtraFiles, callsEnv = callsShim.Attach(nil)
	cmd.Env = append(cmd.Env, callsEnv)
	if len(artefact) > 0 {
		hostEnd, shimEnd, err := shared.ArtefactSocket()
		if err != nil {
			b.Fatal(err)
		}
		err = shared.SendArtefact(hostEnd, artefact[0])
		hostEnd.Close()
		if err != nil {
			b.Fatal(err)
		}
		defer shimEnd.Close()
		cmd.Env = append(cmd.Env, shared.EnvShimArtefactSocket+"="+strconv.Itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, shimEnd)
	}
	cmd.SysProcAttr = sandbox.ProcessAttr()
	client := plugin.NewClient(goplugin.ClientConfig(cmd, hclog.NewNullLogger()))
	rpc, err := client.Client()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		b.Fatal(err)
	}
	calls := callwire.NewHostEnd(callsHost)
	go calls.Serve(func(context.Context, *pb.HostCallRequest) (*pb.HostCallResponse, error) {
		return &pb.HostCallResponse{}, nil
	}, func(err error) error { return err })
	b.Cleanup(func() { calls.Close() })
	return client, &rawClient{ShimClient: raw.(*goplugin.ShimClient), calls: calls}, cmd.Process.Pid
}

func benchHost(b *testing.B, sb ...*sandbox.Sandbox) *host.Host {
	return benchHostConfig(b, func(c *host.Config) {
		if len(sb) > 0 {
			c.Sandbox = sb[0]
		}
	})
}

// benchHostConfig is a benchmark's host with its own state directory, configured by set.
func benchHostConfig(b *testing.B, set func(*host.Config)) *host.Host {
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	cfg := host.Config{Shim: shim, StateDir: b.TempDir(), Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn}
	set(&cfg)
	h, err := host.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

// callBlock is how many operations the call-path benchmarks run back to back before they switch
// to the next measurement: the baseline's two processes are then as warm as the host and shim
// are in their own block (see BenchmarkExportCall).
const callBlock = 100

// BenchmarkExportCall: one export call through astrid-shim (host → shim → kernel → guest echo of
// 64 bytes → back) against the physical baseline, a 64-byte ping-pong between two processes over
// a unix socket. It also reports rawshim's echo over the same call connection (the protocol
// without the runtime).
//
// The three alternate in blocks of callBlock operations back to back, so drift on a shared
// machine hits all alike, and each pair of processes is measured in the same state: busy with
// one operation after another, as the standalone BenchmarkSocketRTT's ping-pong is and as a
// shim answering a stream of calls is. Alternating one operation at a time instead would leave
// each pair idle while the other two run, so every round trip would start by waking two
// sleeping threads: that measures how long this machine takes to wake an idle process (it
// doubled the ping-pong's time), which no faster protocol can remove, and it made the baseline
// look slower than the standalone ping-pong is.
func BenchmarkExportCall(b *testing.B) {
	ctx := context.Background()
	client, raw, _ := startRaw(b)
	defer client.Kill()
	peer := startEchoPeer(b)
	h := benchHost(b)
	wasm := watModule(b, "echo", echoWAT)
	m, err := manifest.ForWasm(wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, _, err := h.Load(ctx, m, host.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	input := make([]byte, 64)
	req := &pb.InvokeRequest{Export: "echo", Input: input}
	// The sleeps of this process's threads and the other side's, over the socket blocks and over
	// the call blocks: a round trip needs one of each; more is a thread woken for nothing.
	sockSw := newSwitchCounter(os.Getpid(), peer.cmd.Process.Pid)
	callSw := newSwitchCounter(os.Getpid(), inst.Pid())
	var socketTime, rawTime, callTime time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += callBlock {
		n := min(callBlock, b.N-done)
		sockSw.begin(b)
		t0 := time.Now()
		for range n {
			peer.roundTrip()
		}
		t1 := time.Now()
		sockSw.end(b)
		for range n {
			if _, err := raw.Invoke(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		callSw.begin(b)
		t2 := time.Now()
		for range n {
			if _, err := inst.Call(ctx, "echo", input, 0); err != nil {
				b.Fatal(err)
			}
		}
		t3 := time.Now()
		callSw.end(b)
		socketTime += t1.Sub(t0)
		rawTime += t2.Sub(t1)
		callTime += t3.Sub(t2)
	}
	b.StopTimer()
	b.ReportMetric(float64(rawTime)/float64(b.N)/1e3, "raw-echo-µs")
	per := func(v int64) float64 { return float64(v) / float64(b.N) }
	b.ReportMetric(per(sockSw.vol[0]), "socket-own-sleeps/rtt")
	b.ReportMetric(per(sockSw.vol[1]), "socket-peer-sleeps/rtt")
	b.ReportMetric(per(callSw.vol[0]), "host-sleeps/call")
	b.ReportMetric(per(callSw.vol[1]), "shim-sleeps/call")
	// And their CPU a call: what a change to how either side waits costs or saves.
	cpu := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(b.N) }
	b.ReportMetric(cpu(sockSw.ran[0]+sockSw.ran[1]), "socket-cpu-µs/rtt")
	b.ReportMetric(cpu(callSw.ran[0]), "host-cpu-µs/call")
	b.ReportMetric(cpu(callSw.ran[1]), "shim-cpu-µs/call")
	report(b, "socket-rtt-µs", socketTime, "export-call-µs", callTime)
}

// BenchmarkColdStart: a capsule from launch to Ready with its module already cached, on a host
// configured as `run` configures it (the shim sandboxed, a spare shim started ahead: the start
// is the artefact handover, deserialise, instantiate and _initialize), against a raw go-plugin
// start plus the deserialisation of the same artefact. no-spare-start-ms is the same sandboxed
// start on a host that keeps no spare (the process start included: the first capsule of a kind,
// or one started while its spare still starts). Each spare's start in the background is waited
// for outside the timer, as a host has long finished it when a capsule starts.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	h := benchHost(b, testSandbox)
	noSpare := benchHostConfig(b, func(c *host.Config) { c.Sandbox, c.SpareShims = testSandbox, -1 })
	m, _, err := manifest.Load(capsules["hello"])
	if err != nil {
		b.Fatal(err)
	}
	first, res, err := h.Load(ctx, m, host.LoadOptions{})
	if err != nil || !res.Compiled {
		b.Fatalf("warm-up load: compiled=%v, %v", res.Compiled, err)
	}
	first.Stop(ctx)
	artefacts, _ := filepath.Glob(filepath.Join(h.Cache().Dir(), "[0-9a-f]*-*.cwasm"))
	if len(artefacts) != 1 {
		b.Fatalf("want one cached artefact, found %v", artefacts)
	}
	load := func(h *host.Host) time.Duration {
		inst, res, err := h.Load(ctx, m, host.LoadOptions{})
		if err != nil || res.Compiled {
			b.Fatalf("load: compiled=%v, %v", res.Compiled, err)
		}
		inst.Stop(ctx)
		return res.Took
	}
	if inst, res, err := noSpare.Load(ctx, m, host.LoadOptions{}); err != nil || !res.Compiled { // its own cache
		b.Fatalf("warm-up load: compiled=%v, %v", res.Compiled, err)
	} else {
		inst.Stop(ctx)
	}
	var rawTime, capsuleTime, noSpareTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		h.WaitSpares()
		art, err := h.Cache().Open(artefacts[0])
		if err != nil || art == nil {
			b.Fatalf("open the cached artefact: %v", err)
		}
		b.StartTimer()
		t0 := time.Now()
		client, raw, _ := startRaw(b, art)
		art.Close()
		if _, err := raw.Load(ctx, &pb.LoadRequest{ArtefactPath: artefacts[0]}); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(t0)
		client.Kill()

		capsuleTime += load(h)
		noSpareTime += load(noSpare)
	}
	b.StopTimer()
	report(b, "raw-start-ms", rawTime, "capsule-start-ms", capsuleTime)
	b.ReportMetric(float64(noSpareTime)/float64(b.N)/float64(time.Millisecond), "no-spare-start-ms")
	b.ReportMetric(float64(noSpareTime)/float64(rawTime), "no-spare-ratio")
}

// BenchmarkSandboxedStart: a capsule from launch to Ready (module cached, no spare shim: the
// process start included) with its shim started through the sandbox helper (every layer this
// machine has) against the same start with the shim exec'd directly (process group only),
// alternating in the same run: what the sandbox costs a shim's start.
func BenchmarkSandboxedStart(b *testing.B) {
	ctx := context.Background()
	direct := benchHostConfig(b, func(c *host.Config) { c.SpareShims = -1 })
	sandboxed := benchHostConfig(b, func(c *host.Config) { c.Sandbox, c.SpareShims = testSandbox, -1 })
	m, _, err := manifest.Load(capsules["hello"])
	if err != nil {
		b.Fatal(err)
	}
	start := func(h *host.Host) time.Duration {
		inst, res, err := h.Load(ctx, m, host.LoadOptions{})
		if err != nil {
			b.Fatalf("load: %v", err)
		}
		inst.Stop(ctx)
		return res.Took
	}
	start(direct) // compile once per cache
	start(sandboxed)
	var directTime, sandboxedTime time.Duration
	b.ResetTimer()
	for range b.N {
		directTime += start(direct)
		sandboxedTime += start(sandboxed)
	}
	b.StopTimer()
	report(b, "direct-start-ms", directTime, "sandboxed-start-ms", sandboxedTime)
}

// fetchWAT makes one http_request with its input as the request JSON and outputs the body.
const fetchWAT = `(module
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "fetch") (result i32) (local $body i64)
    (local.set $body (call $http_request (call $input_offset) (i64.const 0)))
    (call $output_set (local.get $body) (call $length (local.get $body)))
    (i32.const 0)))`

// capabilityLoopWAT calls astrid_check_capsule_capability with "{}" as many times as its input
// has bytes: the cheapest host function that crosses to the host, in a loop.
const capabilityLoopWAT = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/user" "astrid_check_capsule_capability" (func $check (param i64) (result i64)))
  (func (export "loop") (result i32) (local $n i64) (local $req i64)
    (local.set $n (call $input_length))
    (local.set $req (call $alloc (i64.const 2)))
    (call $store_u8 (local.get $req) (i32.const 123))
    (call $store_u8 (i64.add (local.get $req) (i64.const 1)) (i32.const 125))
    (block $done (loop $l
      (br_if $done (i64.eqz (local.get $n)))
      (drop (call $check (local.get $req)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $l)))
    (i32.const 0)))`

// hostCallsPerOp is how many host calls BenchmarkHostFunction's guest makes in one export call.
const hostCallsPerOp = 64

// BenchmarkHostFunction: host-function round trips guest → kernel → shim → host → back to the
// guest (astrid_check_capsule_capability, whose host work is a JSON decode), hostCallsPerOp of
// them in one export call, against the physical baseline (a unix-socket ping-pong between two
// processes), alternating in blocks: hostCallsPerOp round trips back to back, then the call
// (each pair busy with one round trip after another, as in BenchmarkExportCall).
// host-function-µs is the export call's time divided by hostCallsPerOp, so it includes that
// share of the call itself.
func BenchmarkHostFunction(b *testing.B) {
	ctx := context.Background()
	peer := startEchoPeer(b)
	h := benchHost(b)
	m, err := manifest.ForWasm(watModule(b, "loop", capabilityLoopWAT))
	if err != nil {
		b.Fatal(err)
	}
	inst, _, err := h.Load(ctx, m, host.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	input := make([]byte, hostCallsPerOp)
	var socketTime, guestTime time.Duration
	b.ResetTimer()
	for range b.N {
		for range hostCallsPerOp {
			socketTime += peer.roundTrip()
		}
		t0 := time.Now()
		if _, err := inst.Call(ctx, "loop", input, 0); err != nil {
			b.Fatal(err)
		}
		guestTime += time.Since(t0)
	}
	b.StopTimer()
	report(b, "socket-rtt-µs", socketTime/hostCallsPerOp, "host-function-µs", guestTime/hostCallsPerOp)
}

// benchHTTP serves the host functions to rawshim: only Http, through the same gate as the host.
type benchHTTP struct {
	pb.UnimplementedHostServicesServer
	client *httpgate.Client
}

func (s *benchHTTP) Http(ctx context.Context, req *pb.HttpRequest) (*pb.HttpResponse, error) {
	resp, err := s.client.Do(ctx, httpgate.Request{URL: req.Url, Method: req.Method, Headers: req.Headers, Body: req.Body})
	if err != nil {
		return nil, err
	}
	return &pb.HttpResponse{Status: int32(resp.Status), Headers: resp.Headers, Body: resp.Body}, nil
}

// BenchmarkHTTPFunction: an export whose guest makes one host-function call that crosses to the
// host (http_request to a local server: guest → kernel → shim → broker → host → HTTP → back),
// against rawshim doing the same host work with one raw broker RPC (host → rawshim → broker →
// host → HTTP → back). Both include one host→shim and one shim→host RPC and the same request, so
// the ratio is what the wasm guest, the kernel and the adapters add.
func BenchmarkHTTPFunction(b *testing.B) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("pong")) }))
	defer srv.Close()

	client, raw, pid := startRaw(b)
	defer client.Kill()
	gate := httpgate.NewClient(httpgate.Policy{AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true})
	defer gate.Close()
	id := raw.ServeHostServices(&benchHTTP{client: gate}, pid, nil)
	if _, err := raw.Load(ctx, &pb.LoadRequest{HostServicesId: id}); err != nil {
		b.Fatal(err)
	}

	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	h, err := host.New(host.Config{Shim: shim, StateDir: b.TempDir(), Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn, AllowPrivateNetwork: true})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(ctx)
	m, err := manifest.ForWasm(watModule(b, "fetch", fetchWAT))
	if err != nil {
		b.Fatal(err)
	}
	inst, _, err := h.Load(ctx, m, host.LoadOptions{AllowHosts: []string{"127.0.0.1"}})
	if err != nil {
		b.Fatal(err)
	}
	request := []byte(`{"url": "` + srv.URL + `"}`)
	var rawTime, guestTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		out, err := raw.Invoke(ctx, &pb.InvokeRequest{Export: "http", Input: []byte(srv.URL)})
		if err != nil || string(out.Output) != "pong" {
			b.Fatalf("raw: %v %v", out, err)
		}
		t1 := time.Now()
		body, err := inst.Call(ctx, "fetch", request, 0)
		if err != nil || string(body) != "pong" {
			b.Fatalf("guest: %q %v", body, err)
		}
		guestTime += time.Since(t1)
		rawTime += t1.Sub(t0)
	}
	b.StopTimer()
	report(b, "raw-broker-rpc-µs", rawTime, "guest-host-function-µs", guestTime)
}

// report adds the mean of both measurements and their ratio to the benchmark's output.
func report(b *testing.B, baseName string, base time.Duration, name string, d time.Duration) {
	unit := float64(time.Microsecond)
	if len(name) > 3 && name[len(name)-3:] == "-ms" {
		unit = float64(time.Millisecond)
	}
	n := float64(b.N)
	b.ReportMetric(float64(base)/n/unit, baseName)
	b.ReportMetric(float64(d)/n/unit, name)
	b.ReportMetric(float64(d)/float64(base), "ratio")
}
