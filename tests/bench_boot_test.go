package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// bootGraph is the 50 capsules of BenchmarkBoot, in the order discovery would find them (leaves
// first, so that the order is the dependency sort's doing): one root exporting bench/root; 4
// capsules importing it, each exporting bench/midK; 45 leaves, each importing one of those.
func bootGraph(b testing.TB) []host.Capsule {
	var cs []bootCapsule
	for k := range 45 {
		cs = append(cs, bootCapsule{name: fmt.Sprintf("leaf%02d", k), toml: fmt.Sprintf("[imports.bench]\nmid%d = \"^1.0\"\n", k%4)})
	}
	for k := range 4 {
		cs = append(cs, bootCapsule{name: fmt.Sprintf("mid%d", k), toml: fmt.Sprintf("[imports.bench]\nroot = \"^1.0\"\n\n[exports.bench]\nmid%d = \"1.0.0\"\n", k)})
	}
	cs = append(cs, bootCapsule{name: "root", toml: "[exports.bench]\nroot = \"1.0.0\"\n"})
	var caps []host.Capsule
	for _, c := range cs {
		caps = append(caps, host.Capsule{Manifest: mustManifest(b, watCapsule(b, c.name, echoWAT, c.toml)), Options: host.LoadOptions{RunLoop: true}})
	}
	return caps
}

// BenchmarkBoot: Host.Boot of 50 capsules in dependency order (three levels: 1 root, 4 that
// import it, 45 that import those), modules cached, shims sandboxed as `run` starts them, on a
// new host each time (no spare shim started before Boot), against Boot of one such capsule,
// alternating in the same run. Booted one at a time, 50 capsules would take 50 times as long:
// ratio-to-1x50 is boot-50-ms over 50 times boot-1-ms (the target is boot-50-ms ≤ 500).
func BenchmarkBoot(b *testing.B) {
	ctx := context.Background()
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	state := b.TempDir() // one module cache for every host
	// boot boots caps on a new host and returns how long Boot took; with cached, every module
	// must come from the cache.
	boot := func(caps []host.Capsule, cached bool) time.Duration {
		h, err := host.New(host.Config{Shim: shim, StateDir: state, Workspace: b.TempDir(), Sandbox: testSandbox, Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Shutdown(ctx)
		t0 := time.Now()
		rep := h.Boot(ctx, caps)
		took := time.Since(t0)
		if rep.Loaded() != len(caps) || rep.Cycle != nil {
			b.Fatalf("booted %d of %d capsules (cycle %v): %+v", rep.Loaded(), len(caps), rep.Cycle, rep.Outcomes)
		}
		for _, o := range rep.Outcomes {
			if cached && o.Result.Compiled {
				b.Fatalf("%s was compiled: the module cache is not warm", o.Instance.ID())
			}
		}
		return took
	}
	fifty := bootGraph(b)
	one := fifty[len(fifty)-1:] // the root
	boot(fifty, false)          // warm the module cache
	var oneTime, fiftyTime time.Duration
	b.ResetTimer()
	for range b.N {
		oneTime += boot(one, true)
		fiftyTime += boot(fifty, true)
	}
	b.StopTimer()
	report(b, "boot-1-ms", oneTime, "boot-50-ms", fiftyTime)
	b.ReportMetric(float64(fiftyTime)/float64(50*oneTime), "ratio-to-1x50")
}
