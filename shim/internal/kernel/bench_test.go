package kernel

import (
	"testing"
	"time"
)

func BenchmarkEcho1MiB(b *testing.B) {
	in := pattern(1 << 20)
	b.Run("kernel-echo", func(b *testing.B) {
		e := newEnv(b, 64<<20)
		f := e.inst.GetFunc(e.store, "echo")
		b.SetBytes(1 << 20)
		for b.Loop() {
			if err := e.k.BeginCall(e.store, in); err != nil {
				b.Fatal(err)
			}
			e.store.SetEpochDeadline(1 << 30)
			if _, err := f.Call(e.store); err != nil {
				b.Fatal(err)
			}
			out, _, _, err := e.k.Output(e.store)
			if err != nil || len(out) != len(in) {
				b.Fatal(len(out), err)
			}
		}
	})
	b.Run("kernel-copy", func(b *testing.B) { // load_u64/store_u64 alternating between two blocks
		e := newEnv(b, 64<<20)
		f := e.inst.GetFunc(e.store, "copy")
		b.SetBytes(1 << 20)
		for b.Loop() {
			if err := e.k.BeginCall(e.store, in); err != nil {
				b.Fatal(err)
			}
			e.store.SetEpochDeadline(1 << 30)
			if _, err := f.Call(e.store); err != nil {
				b.Fatal(err)
			}
			out, _, _, err := e.k.Output(e.store)
			if err != nil || len(out) != len(in) {
				b.Fatal(len(out), err)
			}
		}
	})
	b.Run("go-copy", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for b.Loop() {
			out := make([]byte, len(in))
			copy(out, in)
			if out[len(out)-1] != in[len(in)-1] {
				b.Fatal("copy")
			}
		}
	})
}

// BenchmarkMove1MiB moves a 1 MiB input into the kernel and back out as the output of a guest that
// copies it word by word (input_load_u64/store_u64, about 262 000 kernel calls), against copying
// 1 MiB in Go: the two alternate in one loop and the ratio is reported.
func BenchmarkMove1MiB(b *testing.B) {
	in := pattern(1 << 20)
	e := newEnv(b, 64<<20)
	f := e.inst.GetFunc(e.store, "echo")
	var kernelTime, goTime time.Duration
	var sink []byte
	for b.Loop() {
		t0 := time.Now()
		if err := e.k.BeginCall(e.store, in); err != nil {
			b.Fatal(err)
		}
		e.store.SetEpochDeadline(1 << 30)
		if _, err := f.Call(e.store); err != nil {
			b.Fatal(err)
		}
		out, _, _, err := e.k.Output(e.store)
		if err != nil || len(out) != len(in) {
			b.Fatal(len(out), err)
		}
		t1 := time.Now()
		sink = append(make([]byte, 0, len(in)), in...)
		goTime += time.Since(t1)
		kernelTime += t1.Sub(t0)
	}
	_ = sink
	n := float64(b.N)
	b.ReportMetric(float64(kernelTime.Microseconds())/n, "kernel-µs")
	b.ReportMetric(float64(goTime.Microseconds())/n, "go-copy-µs")
	b.ReportMetric(float64(kernelTime)/float64(goTime), "ratio")
}
