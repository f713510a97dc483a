package shim

import (
	"context"
	"testing"
	"time"

	"github.com/astrid-go/astrid/shared/pb"
)

// echoWAT copies its input to its output through the kernel.
const echoWAT = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "echo") (result i32)
    (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $h (call $alloc (local.get $n)))
    (block $done (loop $copy
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u64 (i64.add (local.get $h) (local.get $i)) (call $input_load_u64 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $copy)))
    (call $output_set (local.get $h) (local.get $n))
    (i32.const 0))
  (func (export "nop") (result i32) (i32.const 0)))`

func newTestGuest(tb testing.TB) (*Engine, *guest, *env) {
	tb.Helper()
	e := testEngine(tb, false)
	g, v, err := watGuest(tb, e, echoWAT, guestConfig{capsuleID: "bench", limits: limitsFor(64 << 20), callTimeout: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return e, g, v
}

func TestCallEcho(t *testing.T) {
	e, g, v := newTestGuest(t)
	ctx := context.Background()
	// The guest copies whole words, so whole-word inputs round-trip.
	for _, in := range []string{"", "12345678", "0123456789abcdef"} {
		out, gerr, trapped := e.call(ctx, g, v, "echo", []byte(in), v.cfg.callTimeout)
		if gerr != nil || trapped {
			t.Fatalf("echo %q: %v (trapped %v)", in, gerr, trapped)
		}
		if string(out) != in {
			t.Fatalf("echo %q = %q", in, out)
		}
	}
	// A word read past the end of the input is a kernel fault that names the offset; the Store is
	// then not reused.
	_, gerr, trapped := e.call(ctx, g, v, "echo", []byte("abc"), v.cfg.callTimeout)
	want := "call to echo trapped: extism kernel: input_load_u64: offset 0 (8 bytes) is past the end of the 3-byte input"
	if !trapped || gerr.GetKind() != pb.GuestError_TRAP || gerr.GetMessage() != want {
		t.Fatalf("short input: %v (trapped %v), want %q", gerr, trapped, want)
	}
}

// BenchmarkCall: an export call inside the shim (kernel reset, input, deadline, call, output)
// against a bare wasmtime Func.Call of an export that does nothing: the in-process baseline.
func BenchmarkCall(b *testing.B) {
	e, g, v := newTestGuest(b)
	ctx := context.Background()
	input := make([]byte, 64)
	nop := g.instance.GetFunc(g.store, "nop")
	g.store.SetEpochDeadline(1 << 62) // calls outside e.call need a deadline of their own
	b.Run("bare-func-call", func(b *testing.B) {
		for range b.N {
			if _, err := nop.Call(g.store); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shim-call-echo-64B", func(b *testing.B) {
		for range b.N {
			if _, gerr, _ := e.call(ctx, g, v, "echo", input, v.cfg.callTimeout); gerr != nil {
				b.Fatal(gerr)
			}
		}
	})
}
