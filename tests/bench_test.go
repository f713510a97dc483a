package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/sandbox"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// The benchmarks compare the runtime against a baseline measured in the same run: rawshim, a
// go-plugin server speaking the same protocol with nothing behind it (tests/rawshim). Each
// benchmark alternates the two so drift on a shared machine hits both alike, and reports both
// times and their ratio (the figure DESIGN.md §7 sets targets for).

var (
	rawShimOnce sync.Once
	rawShimBin  string
	rawShimErr  error
)

func rawShim(b *testing.B) string {
	rawShimOnce.Do(func() {
		rawShimBin = filepath.Join(binDir, "rawshim")
		rawShimErr = goBuild(nil, "-o", rawShimBin, "./tests/rawshim")
	})
	if rawShimErr != nil {
		b.Fatalf("build rawshim: %v\n%s", rawShimErr, buildLogs.String())
	}
	return rawShimBin
}

// startRaw starts rawshim with the client settings astrid-host uses for astrid-shim.
func startRaw(b *testing.B) (*plugin.Client, *shared.ShimClient) {
	cmd := exec.Command(rawShim(b))
	cmd.Env = []string{"TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = sandbox.ProcessAttr()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          plugin.PluginSet{shared.PluginName: &shared.ShimPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true,
		Logger:           hclog.NewNullLogger(),
		GRPCDialOptions:  shared.DialOptions(),
	})
	rpc, err := client.Client()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		b.Fatal(err)
	}
	return client, raw.(*shared.ShimClient)
}

func benchHost(b *testing.B) *host.Host {
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	h, err := host.New(host.Config{Shim: shim, StateDir: b.TempDir(), Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

// BenchmarkExportCall: one export call through astrid-shim (host → shim → kernel → guest echo of
// 64 bytes → back) against one raw go-plugin echo round trip of the same 64 bytes.
func BenchmarkExportCall(b *testing.B) {
	ctx := context.Background()
	client, raw := startRaw(b)
	defer client.Kill()
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
	var rawTime, callTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := raw.Invoke(ctx, &pb.InvokeRequest{Export: "echo", Input: input}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := inst.Call(ctx, "echo", input, 0); err != nil {
			b.Fatal(err)
		}
		callTime += time.Since(t1)
		rawTime += t1.Sub(t0)
	}
	b.StopTimer()
	report(b, "raw-echo-µs", rawTime, "export-call-µs", callTime)
}

// BenchmarkColdStart: a capsule from launch to Ready with its module already cached (shim
// start, handshake, deserialise, instantiate, _initialize) against a raw go-plugin start plus the
// deserialisation of the same artefact.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	h := benchHost(b)
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
	var rawTime, capsuleTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		client, raw := startRaw(b)
		if _, err := raw.Load(ctx, &pb.LoadRequest{ArtefactPath: artefacts[0]}); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(t0)
		client.Kill()

		inst, res, err := h.Load(ctx, m, host.LoadOptions{})
		if err != nil || res.Compiled {
			b.Fatalf("load: compiled=%v, %v", res.Compiled, err)
		}
		capsuleTime += res.Took
		inst.Stop(ctx)
	}
	b.StopTimer()
	report(b, "raw-start-ms", rawTime, "capsule-start-ms", capsuleTime)
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
