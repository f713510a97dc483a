package tests

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/shared/pb"
)

// shimWAT reads a test guest the shim's own tests use (shim/testdata).
func shimWAT(t *testing.T, name string) string {
	t.Helper()
	wat, err := os.ReadFile(filepath.Join(repoRoot, "shim", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(wat)
}

// TestStoreLimitsInHost is hole 3 through the real host and shim: with [limits] memory = 4 MiB
// (documented shares: 3 MiB of guest memory, 768 KiB of kernel memory, 32 768 table elements),
// a capsule that grows its table is refused at exactly the limit and one with many memories does
// not load; the hog stays Ready and answers, and a neighbour is unaffected throughout.
func TestStoreLimitsInHost(t *testing.T) {
	const tableLimit = 4 << 20 / 128
	h := newHost(t)
	neighbour, _ := loadCapsule(t, h, watCapsule(t, "neighbour", echoWAT, ""))
	hog, _ := loadCapsule(t, h, watCapsule(t, "hog", shimWAT(t, "hog.wat"), "[limits]\nmemory = \"4MiB\"\n"))
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	ctx := context.Background()
	steps := []struct {
		export string
		input  []byte
		ok     bool
	}{
		{"grow_memory", nil, true},
		{"fill_kernel", nil, true},
		{"grow_table", u64(tableLimit), false}, // 1 + 32 768 elements: one too many
		{"grow_table", u64(tableLimit - 1), true},
		{"table_size", u64(tableLimit), true},
		{"grow_table", u64(1), false},
		{"nop", nil, true},
	}
	for _, st := range steps {
		_, err := hog.Call(ctx, st.export, st.input, 0)
		if (err == nil) != st.ok {
			t.Fatalf("%s(%x): %v, want success %v", st.export, st.input, err, st.ok)
		}
		var ge *host.GuestError
		if err != nil && (!errors.As(err, &ge) || ge.Kind != pb.GuestError_GUEST_ERROR) {
			t.Fatalf("%s(%x): %v, want the guest's own failure (table.grow returned -1), not a trap", st.export, st.input, err)
		}
		if out, err := neighbour.Call(ctx, "echo", []byte("unaffected"), 0); err != nil || string(out) != "unaffected" {
			t.Fatalf("the neighbour after the hog's %s: %q, %v", st.export, out, err)
		}
	}
	if st, reason := hog.State(); st != host.StateReady {
		t.Errorf("the hog is %s (%s), want Ready", st, reason)
	}

	many := watCapsule(t, "many", `(module `+strings.Repeat(`(memory 1000)`, 100)+`)`, "")
	_, _, err := h.Load(ctx, mustManifest(t, many), host.LoadOptions{})
	want := "instantiate: the module defines more than one linear memory; a capsule may have one (of at most 48 MiB (three quarters of [limits] memory, 64 MiB))"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("loading a module with 100 memories: %v\nwant %q", err, want)
	}
	if out, err := neighbour.Call(ctx, "echo", []byte("still"), 0); err != nil || string(out) != "still" {
		t.Fatalf("the neighbour after the refused load: %q, %v", out, err)
	}
}

// TestStartSection is hole 5 through astrid-host call: a module with a start section loads and
// runs (with fuel metering too), its start function is bounded by --timeout, and a guest's
// proc_exit status outside [0, 126) is reported as given.
func TestStartSection(t *testing.T) {
	start := watModule(t, "start", shimWAT(t, "start.wat"))
	fueled := watCapsule(t, "fueled", shimWAT(t, "start.wat"), "[limits]\nfuel = 1000000\n")
	spin := watModule(t, "spin", `(module (func $s (loop $l (br $l))) (start $s) (func (export "run") (result i32) (i32.const 0)))`)
	spinInit := watModule(t, "spininit", `(module (func (export "_initialize") (loop $l (br $l))) (func (export "run") (result i32) (i32.const 0)))`)
	exit := watModule(t, "exit", `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (memory (export "memory") 1)
  ;; exits with the status in config "code", a decimal number with an optional minus sign
  (func (export "exit") (result i32)
    (local $key i64) (local $v i64) (local $n i64) (local $i i64) (local $c i32) (local $neg i32) (local $status i32)
    (local.set $key (call $alloc (i64.const 4)))
    (call $store_u8 (local.get $key) (i32.const 99))
    (call $store_u8 (i64.add (local.get $key) (i64.const 1)) (i32.const 111))
    (call $store_u8 (i64.add (local.get $key) (i64.const 2)) (i32.const 100))
    (call $store_u8 (i64.add (local.get $key) (i64.const 3)) (i32.const 101))
    (local.set $v (call $config_get (local.get $key)))
    (local.set $n (call $length (local.get $v)))
    (block $done (loop $digits
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $c (call $load_u8 (i64.add (local.get $v) (local.get $i))))
      (if (i32.eq (local.get $c) (i32.const 45))
        (then (local.set $neg (i32.const 1)))
        (else (local.set $status (i32.add (i32.mul (local.get $status) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48))))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $digits)))
    (if (local.get $neg) (then (local.set $status (i32.sub (i32.const 0) (local.get $status)))))
    (call $exit (local.get $status))
    (i32.const 0)))`)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "start section", args: []string{"call", start, "greet"}, wantStdout: "hello from a start section"},
		{name: "start section with fuel", args: []string{"call", fueled, "greet"}, wantStdout: "hello from a start section"},
		{name: "endless start function bounded by --timeout", args: []string{"call", spin, "run", "--timeout", "300ms"},
			wantCode: 2, wantStderr: "call to the start function hit its time limit of 300ms and was interrupted"},
		{name: "endless _initialize bounded by --timeout", args: []string{"call", spinInit, "run", "--timeout", "300ms"},
			wantCode: 2, wantStderr: "call to _initialize hit its time limit of 300ms and was interrupted"},
		{name: "proc_exit 500", args: []string{"call", exit, "exit", "--config", "code=500"},
			wantCode: 1, wantStderr: "error: call to exit: the guest exited with status 500\n"},
		{name: "proc_exit -1", args: []string{"call", exit, "exit", "--config", "code=-1"},
			wantCode: 1, wantStderr: "error: call to exit: the guest exited with status -1\n"},
		{name: "proc_exit 0", args: []string{"call", exit, "exit", "--config", "code=0"}},
	}
	state := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, state, tc.args...)
			if res.code != tc.wantCode || res.stdout != tc.wantStdout || !strings.Contains(res.stderr, tc.wantStderr) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, stdout %q, stderr containing %q",
					res.code, res.stdout, res.stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}
