package kernel

import (
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
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

// BenchmarkMove1MiB moves a 1 MiB input through the kernel — into its memory (BeginCall), out as
// the output of a guest that hands its input block on (output_set of the input), read where it
// lies (OutputView, as the shim sends it) — against copying 1 MiB in Go into a preallocated
// buffer; the two alternate in one loop and the ratio is reported. word-by-word-µs is the same
// 1 MiB moved by a guest that copies it 8 bytes per kernel call (input_load_u64/store_u64, about
// 262 000 kernel calls), as the Extism PDKs read input: the price of the guest's own loop.
func BenchmarkMove1MiB(b *testing.B) {
	in := pattern(1 << 20)
	dst := make([]byte, len(in))
	e := newEnv(b, 64<<20)
	pass, echo := e.inst.GetFunc(e.store, "pass"), e.inst.GetFunc(e.store, "echo")
	move := func(f *wasmtime.Func) []byte {
		if err := e.k.BeginCall(e.store, in); err != nil {
			b.Fatal(err)
		}
		e.store.SetEpochDeadline(1 << 30)
		if _, err := f.Call(e.store); err != nil {
			b.Fatal(err)
		}
		out, _, _, err := e.k.OutputView(e.store)
		if err != nil || len(out) != len(in) {
			b.Fatal(len(out), err)
		}
		return out
	}
	var kernelTime, goTime, wordTime time.Duration
	words := 0
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		out := move(pass)
		t1 := time.Now()
		copy(dst, in)
		t2 := time.Now()
		if out[len(out)-1] != in[len(in)-1] || dst[len(dst)-1] != in[len(in)-1] {
			b.Fatal("moved the wrong bytes")
		}
		kernelTime += t1.Sub(t0)
		goTime += t2.Sub(t1)
		if i%10 == 0 { // the slow path, sampled
			t3 := time.Now()
			move(echo)
			wordTime += time.Since(t3)
			words++
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(kernelTime)/n/1e3, "kernel-µs")
	b.ReportMetric(float64(goTime)/n/1e3, "go-copy-µs")
	b.ReportMetric(float64(wordTime)/float64(words)/1e3, "word-by-word-µs")
	b.ReportMetric(float64(kernelTime)/float64(goTime), "ratio")
}
