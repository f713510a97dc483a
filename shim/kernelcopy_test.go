package shim

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// copyGuest allocates two adjacent 16-byte blocks A (bytes 0x11…, 0x12…) and B (0x21…, 0x22…),
// frees A if input word 4 is not 0, then calls astrid_kernel_read (word 0 = 0) or
// astrid_kernel_write (word 0 = 1) with the address A + word 1, the guest address word 2 and the
// length word 3. Its output is A, B and the guest's bytes 0x100..0x120 afterwards (64 bytes).
// The guest's bytes 0x200..0x220 are the source of the writes.
const copyGuest = `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_load_u64" (func $in (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "astrid_kernel_read" (func $read (param i64 i64 i64)))
  (import "extism:host/user" "astrid_kernel_write" (func $write (param i64 i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0x200) "0123456789abcdefghijklmnopqrstuv")
  (func (export "copy") (result i32)
    (local $a i64) (local $b i64) (local $addr i64) (local $o i64)
    (local.set $a (call $alloc (i64.const 16)))
    (local.set $b (call $alloc (i64.const 16)))
    (call $store_u64 (local.get $a) (i64.const 0x1111111111111111))
    (call $store_u64 (i64.add (local.get $a) (i64.const 8)) (i64.const 0x1212121212121212))
    (call $store_u64 (local.get $b) (i64.const 0x2121212121212121))
    (call $store_u64 (i64.add (local.get $b) (i64.const 8)) (i64.const 0x2222222222222222))
    (if (i64.ne (call $in (i64.const 32)) (i64.const 0)) (then (call $free (local.get $a))))
    (local.set $addr (i64.add (local.get $a) (call $in (i64.const 8))))
    (if (i64.eqz (call $in (i64.const 0)))
      (then (call $read (local.get $addr) (call $in (i64.const 16)) (call $in (i64.const 24))))
      (else (call $write (local.get $addr) (call $in (i64.const 16)) (call $in (i64.const 24)))))
    (local.set $o (call $alloc (i64.const 64)))
    (call $store_u64 (local.get $o) (call $load_u64 (local.get $a)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 8)) (call $load_u64 (i64.add (local.get $a) (i64.const 8))))
    (call $store_u64 (i64.add (local.get $o) (i64.const 16)) (call $load_u64 (local.get $b)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 24)) (call $load_u64 (i64.add (local.get $b) (i64.const 8))))
    (call $store_u64 (i64.add (local.get $o) (i64.const 32)) (i64.load (i32.const 0x100)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 40)) (i64.load (i32.const 0x108)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 48)) (i64.load (i32.const 0x110)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 56)) (i64.load (i32.const 0x118)))
    (call $output_set (local.get $o) (i64.const 64))
    (i32.const 0)))`

// TestKernelCopy runs astrid_kernel_read and astrid_kernel_write in a real guest: copies inside
// one live block work, in both directions, from any address of the block; a range that leaves
// the block (into the next one, or past a freed or unknown address), a guest range outside its
// memory, and lengths or offsets that would overflow trap the guest's call and copy nothing.
func TestKernelCopy(t *testing.T) {
	a := bytes.Repeat([]byte{0x11}, 8)
	a = append(a, bytes.Repeat([]byte{0x12}, 8)...)
	b := append(bytes.Repeat([]byte{0x21}, 8), bytes.Repeat([]byte{0x22}, 8)...)
	src := []byte("0123456789abcdefghijklmnopqrstuv")
	zero := make([]byte, 32)
	const page = 64 << 10
	const read, write = 0, 1
	tests := []struct {
		name                  string
		op, off, ptr, n, free uint64
		// want is the output (A, B, guest 0x100..0x120); trap, the trap's message if it traps.
		want []byte
		trap string
	}{
		{name: "read a whole block", op: read, ptr: 0x100, n: 16, want: cat(a, b, a, zero[:16])},
		{name: "read inside a block", op: read, off: 8, ptr: 0x108, n: 8, want: cat(a, b, zero[:8], a[8:], zero[:16])},
		{name: "read nothing", op: read, ptr: page, n: 0, want: cat(a, b, zero)},
		{name: "write a whole block", op: write, ptr: 0x200, n: 16, want: cat(src[:16], b, zero)},
		{name: "write inside a block", op: write, off: 4, ptr: 0x210, n: 12, want: cat(a[:4], src[16:28], b, zero)},
		{name: "read into the next block", op: read, ptr: 0x100, n: 17, trap: "read: 17 bytes at address 0x"},
		{name: "write into the next block", op: write, off: 8, ptr: 0x200, n: 16, trap: "write: 16 bytes at address 0x"},
		{name: "read from a freed block", op: read, ptr: 0x100, n: 8, free: 1, trap: "is outside every live block"},
		{name: "write to a freed block", op: write, ptr: 0x200, n: 8, free: 1, trap: "is outside every live block"},
		{name: "read from an unknown address", op: read, off: 1 << 20, ptr: 0x100, n: 8, trap: "is outside every live block"},
		{name: "read from before every block", op: read, off: math.MaxUint64 - 1<<20, ptr: 0x100, n: 8, trap: "is outside every live block"},
		{name: "read past the guest's memory", op: read, ptr: page - 8, n: 16, trap: "outside the guest's 65536-byte memory"},
		{name: "write from past the guest's memory", op: write, ptr: page, n: 1, trap: "outside the guest's 65536-byte memory"},
		{name: "a guest offset that wraps", op: read, ptr: math.MaxUint64 - 7, n: 16, trap: "outside the guest's 65536-byte memory"},
		{name: "a length that wraps", op: read, ptr: 0x100, n: math.MaxUint64, trap: "outside the guest's 65536-byte memory"},
		{name: "a block length that wraps", op: write, off: 8, ptr: 0, n: math.MaxUint64 - 7, trap: "outside the guest's 65536-byte memory"},
	}
	e := testEngine(t, false)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, v, err := watGuest(t, e, copyGuest, guestConfig{limits: limitsFor(64 << 20), callTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			in := cat(u64(tc.op), u64(tc.off), u64(tc.ptr), u64(tc.n), u64(tc.free))
			out, gerr, trapped := e.call(context.Background(), g, v, "copy", in, time.Minute)
			if tc.trap != "" {
				name := [...]string{read: "astrid_kernel_read", write: "astrid_kernel_write"}[tc.op]
				if !trapped || !strings.Contains(gerr.GetMessage(), name+": extism kernel: ") || !strings.Contains(gerr.GetMessage(), tc.trap) {
					t.Fatalf("copy = %x, %v (trapped %v); want a trap with %q", out, gerr, trapped, tc.trap)
				}
				// Nothing was copied into the guest: its bytes are still zero.
				if out, gerr, _ := e.call(context.Background(), g, v, "copy", cat(u64(read), u64(0), u64(0x300), u64(0), u64(0)), time.Minute); gerr != nil || !bytes.Equal(out[32:], zero) {
					t.Fatalf("after the trap the guest's bytes are %x (%v), want zeros", out, gerr)
				}
				return
			}
			if gerr != nil || !bytes.Equal(out, tc.want) {
				t.Fatalf("copy = %x, %v; want %x", out, gerr, tc.want)
			}
		})
	}
}

// TestKernelCopyNoMemory: a guest that exports no memory gets a trap, not a crash.
func TestKernelCopyNoMemory(t *testing.T) {
	wat := `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/user" "astrid_kernel_read" (func $read (param i64 i64 i64)))
  (func (export "copy") (result i32)
    (call $read (call $alloc (i64.const 8)) (i64.const 0) (i64.const 8))
    (i32.const 0)))`
	e := testEngine(t, false)
	g, v, err := watGuest(t, e, wat, guestConfig{limits: limitsFor(64 << 20), callTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_, gerr, trapped := e.call(context.Background(), g, v, "copy", nil, time.Minute)
	if !trapped || !strings.Contains(gerr.GetMessage(), `read: the guest exports no memory "memory"`) {
		t.Fatalf("copy = %v (trapped %v); want a trap: no memory", gerr, trapped)
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// BenchmarkKernelCopy: what a guest pays to move n bytes out of a kernel block with one
// astrid_kernel_read (a call into the shim) against one load_u64 per 8 bytes (calls into the
// kernel, which stay in WebAssembly), to place the SDK's bulkCopyMin.
func BenchmarkKernelCopy(b *testing.B) {
	const wat = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/user" "astrid_kernel_read" (func $read (param i64 i64 i64)))
  (memory (export "memory") 1)
  (func (export "bulk") (result i32)
    (local $i i32)
    (loop $l
      (call $read (call $input_offset) (i64.const 0x100) (call $input_length))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (i32.const 0))
  (func (export "words") (result i32)
    (local $i i32) (local $j i64) (local $h i64) (local $n i64)
    (local.set $h (call $input_offset))
    (local.set $n (call $input_length))
    (loop $l
      (local.set $j (i64.const 0))
      (block $done
        (loop $w
          (br_if $done (i64.ge_u (local.get $j) (local.get $n)))
          (i64.store (i32.add (i32.const 0x100) (i32.wrap_i64 (local.get $j))) (call $load_u64 (i64.add (local.get $h) (local.get $j))))
          (local.set $j (i64.add (local.get $j) (i64.const 8)))
          (br $w)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (i32.const 0)))`
	e := testEngine(b, false)
	g, v, err := watGuest(b, e, wat, guestConfig{limits: limitsFor(64 << 20), callTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{8, 256, 1024, 8192} {
		for _, export := range []string{"bulk", "words"} {
			b.Run(fmt.Sprintf("%s-%d", export, n), func(b *testing.B) {
				in := bytes.Repeat([]byte{7}, n)
				for b.Loop() {
					if _, gerr, _ := e.call(context.Background(), g, v, export, in, time.Minute); gerr != nil {
						b.Fatal(gerr)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/copy")
			})
		}
	}
}

// TestKernelCopyFromStart: a start function runs before the guest's memory is bound to the bulk
// copies (kernel.BindGuest binds it once the guest is instantiated): its copy traps, saying so,
// and the load fails with that message; nothing crashes.
func TestKernelCopyFromStart(t *testing.T) {
	wat := `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/user" "astrid_kernel_write" (func $write (param i64 i64 i64)))
  (memory (export "memory") 1)
  (func $start (call $write (call $alloc (i64.const 8)) (i64.const 0) (i64.const 8)))
  (start $start))`
	_, _, err := watGuest(t, testEngine(t, false), wat, guestConfig{limits: limitsFor(64 << 20), callTimeout: time.Minute})
	want := `astrid_kernel_write: extism kernel: write: the guest exports no memory "memory" (or the call came from its start function`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("instantiate: %v; want an error containing %q", err, want)
	}
}
