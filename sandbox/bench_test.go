package sandbox

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// truePath is /bin/true or wherever this system keeps it.
func truePath(b *testing.B) string {
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	b.Skip("no true(1) on this system")
	return ""
}

// BenchmarkSpawnTrue: the cost of the sandbox on a process start. plain is os/exec of true with
// the process layer only; sandboxed starts it under policy Required with every layer this machine
// has, in fork mode, through a new helper each time; pooled does the same through a Pool's warm
// helper, as the host starts the processes capsules ask for. Both also time a plain spawn before
// each sandboxed one, so their x-plain metric compares the two under the same load. The target
// is at most 2x for pooled.
func BenchmarkSpawnTrue(b *testing.B) {
	path := truePath(b)
	plain := func(b *testing.B) {
		cmd := exec.Command(path)
		cmd.SysProcAttr = ProcessAttr()
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			plain(b)
		}
	})
	for _, pooled := range []bool{false, true} {
		name := "sandboxed"
		if pooled {
			name = "pooled"
		}
		b.Run(name, func(b *testing.B) { benchSandboxed(b, path, plain, pooled) })
	}
}

// benchSandboxed times sandboxed starts of true: each through a new helper, or (pooled) through
// a Pool's warm helper, as the host does.
func benchSandboxed(b *testing.B, path string, plain func(*testing.B), pooled bool) {
	{
		if err := support.CheckPolicy(Required); err != nil {
			b.Skipf("this machine cannot run policy required: %v", err)
		}
		sb := New(testBin, Required, support)
		workspace, tmp := b.TempDir(), b.TempDir()
		spec := Spec{
			Path: path, Env: []string{"PATH=/usr/bin:/bin"}, Dir: workspace,
			ReadWrite: []string{workspace}, PrivateTmp: tmp,
			Cgroup: CgroupLimits{Pids: 64},
		}
		command := sb.Command
		if pooled {
			pool := sb.NewPool(b.TempDir(), 0)
			defer pool.Close()
			spec.PrivateTmp = ""
			command = pool.Command
		}
		var plainTime, sandboxedTime time.Duration
		var layers []Layer
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			t0 := time.Now()
			plain(b)
			plainTime += time.Since(t0)
			b.StartTimer()
			t1 := time.Now()
			cmd, err := command(spec)
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			if exit, err := cmd.Wait(); err != nil || exit != (Exit{}) {
				b.Fatalf("true: %v, %v", exit, err)
			}
			sandboxedTime += time.Since(t1)
			layers = cmd.Layers
		}
		b.ReportMetric(float64(plainTime.Microseconds())/float64(b.N), "plain-µs/op")
		b.ReportMetric(float64(sandboxedTime)/float64(plainTime), "x-plain")
		b.Logf("%s; sandboxed/plain = %.2fx", support.Summary(layers...), float64(sandboxedTime)/float64(plainTime))
	}
}
