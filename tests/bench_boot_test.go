package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// hostCPU is the CPU time (user and system) this process, which runs the host, has used so far.
func hostCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPU is the CPU time (user and system) of this process's children that have exited
// and been waited for, with theirs in turn: the host's spawner, and through it every shim it
// started (sandbox helper included, as Exec mode keeps the pid), once the host has shut down.
func childrenCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time (user and system, of every thread, exited ones too) process pid has
// used so far, from /proc/PID/stat. For a shim this includes the sandbox helper it was before
// its exec (Exec mode keeps the pid), and the namespaces its clone made are charged to the host.
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("the shims' CPU time needs /proc/PID/stat: %v", err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // comm may hold spaces
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	var ticks int64
	for _, field := range f[11:13] { // utime, stime (fields 14 and 15)
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %q", pid, s)
		}
		ticks += n
	}
	const clockTicks = 100 // USER_HZ, 100 on every Linux ABI Go supports
	return time.Duration(ticks) * time.Second / clockTicks
}

// BenchmarkBoot: Host.Boot of 50 capsules in dependency order (three levels: 1 root, 4 that
// import it, 45 that import those), modules cached, shims sandboxed as `run` starts them, on a
// new host each time (no spare shim started before Boot), against Boot of one such capsule,
// alternating in the same run. Booted one at a time, 50 capsules would take 50 times as long:
// ratio-to-1x50 is boot-50-ms over 50 times boot-1-ms (the target is boot-50-ms ≤ 500).
//
// The 50-capsule boots also report the CPU time a capsule's start costs, which on a loaded
// machine says more than the wall time: host-cpu-ms/capsule is the host process's during Boot
// (go-plugin's start of the shim, gRPC, the load), shims-cpu-ms/capsule that of the shims, their
// sandbox helpers and the host's spawner over their whole lives, from the host's New to the end
// of its Shutdown (which waits for them): their start, their load and their exit. (The shims'
// own /proc/PID/stat, read right after Boot, said 0 for most of them.)
func BenchmarkBoot(b *testing.B) {
	ctx := context.Background()
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	state := b.TempDir() // one module cache for every host
	// boot boots caps on a new host and returns how long Boot took; with cached, every module
	// must come from the cache.
	var hostTime, shimTime time.Duration // CPU of the 50-capsule boots
	boot := func(caps []host.Capsule, cached bool) time.Duration {
		k0 := childrenCPU(b) // before New: the spawner starts with the host
		h, err := host.New(host.Config{Shim: shim, StateDir: state, Workspace: b.TempDir(), Sandbox: testSandbox, Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn})
		if err != nil {
			b.Fatal(err)
		}
		shutdown := sync.OnceFunc(func() { h.Shutdown(ctx) })
		defer shutdown()
		c0 := hostCPU(b)
		t0 := time.Now()
		rep := h.Boot(ctx, caps)
		took := time.Since(t0)
		c1 := hostCPU(b)
		if rep.Loaded() != len(caps) || rep.Cycle != nil {
			b.Fatalf("booted %d of %d capsules (cycle %v): %+v", rep.Loaded(), len(caps), rep.Cycle, rep.Outcomes)
		}
		for _, o := range rep.Outcomes {
			if cached && o.Result.Compiled {
				b.Fatalf("%s was compiled: the module cache is not warm", o.Instance.ID())
			}
		}
		shutdown()
		if len(caps) > 1 && cached {
			hostTime += c1 - c0
			shimTime += childrenCPU(b) - k0
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
	perCapsule := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N*len(fifty)) }
	b.ReportMetric(perCapsule(hostTime), "host-cpu-ms/capsule")
	b.ReportMetric(perCapsule(shimTime), "shims-cpu-ms/capsule")
}
