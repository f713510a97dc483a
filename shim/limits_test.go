package shim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/shared/pb"
)

var (
	enginesOnce sync.Once
	engines     map[bool]*Engine // by fuel
	enginesErr  error
)

// testEngine returns a shared engine, with fuel metering or without.
func testEngine(t testing.TB, fuel bool) *Engine {
	t.Helper()
	enginesOnce.Do(func() {
		engines = map[bool]*Engine{}
		for _, f := range []bool{false, true} {
			if engines[f], enginesErr = NewEngine(EngineOptions{Fuel: f}); enginesErr != nil {
				return
			}
		}
	})
	if enginesErr != nil {
		t.Fatal(enginesErr)
	}
	return engines[fuel]
}

// watGuest compiles wat on e and instantiates it as the shim does for a Load, with cfg.
func watGuest(t testing.TB, e *Engine, wat string, cfg guestConfig) (*guest, *env, error) {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(wat)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wasmtime.NewModule(e.engine, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	logs := &logSink{local: hclog.NewNullLogger(), level: LogLevelOff}
	v := &env{cfg: cfg, logs: logs, stdio: newStdio(logs.add), vars: newVarStore()}
	g, err := e.instantiate(context.Background(), m, v)
	if err != nil {
		return nil, v, err
	}
	t.Cleanup(g.close)
	return g, v, nil
}

// readWAT reads a test guest from testdata.
func readWAT(t *testing.T, name string) string {
	t.Helper()
	wat, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(wat)
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// TestStoreTotalWithinLimit is hole 3: a guest that grows its memory, its table and the kernel's
// memory as far as each goes ends with each at exactly its documented share, their total within
// [limits] memory, and the guest still answering calls in the same Store.
func TestStoreTotalWithinLimit(t *testing.T) {
	for _, memory := range []uint64{1 << 20, 4 << 20, 64 << 20} {
		t.Run(formatBytes(memory), func(t *testing.T) {
			e := testEngine(t, false)
			lim := limitsFor(memory)
			g, v, err := watGuest(t, e, readWAT(t, "hog.wat"), guestConfig{limits: lim, callTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			call := func(export string, in []byte) *pb.GuestError {
				t.Helper()
				_, gerr, trapped := e.call(ctx, g, v, export, in, time.Minute)
				if trapped {
					t.Fatalf("%s trapped: %v", export, gerr)
				}
				return gerr
			}
			if gerr := call("grow_memory", nil); gerr != nil {
				t.Fatal(gerr)
			}
			if gerr := call("fill_kernel", nil); gerr != nil {
				t.Fatal(gerr)
			}
			table := g.instance.GetExport(g.store, "table").Table()
			if gerr := call("grow_table", u64(lim.tableElements)); gerr == nil {
				t.Errorf("table.grow to %d elements succeeded; the limit is %d", lim.tableElements+1, lim.tableElements)
			}
			if gerr := call("grow_table", u64(lim.tableElements-table.Size(g.store))); gerr != nil {
				t.Errorf("table.grow up to the limit of %d elements: %v", lim.tableElements, gerr)
			}
			if gerr := call("grow_table", u64(1)); gerr == nil {
				t.Errorf("table.grow past the limit of %d elements succeeded", lim.tableElements)
			}

			guestMem, kernelMem, tableElems := g.memorySize(), g.kernel.MemorySize(g.store), table.Size(g.store)
			total := guestMem + kernelMem + tableElems*tableElementBytes
			t.Logf("guest memory %d, kernel memory %d, table %d elements: %d of %d bytes", guestMem, kernelMem, tableElems, total, memory)
			if guestMem != lim.guestMemory {
				t.Errorf("the guest's memory grew to %d bytes; its limit is %d", guestMem, lim.guestMemory)
			}
			if kernelMem > lim.kernelMemory || kernelMem+2*wasmPageBytes <= lim.kernelMemory {
				t.Errorf("the kernel's memory ended at %d bytes; its limit is %d, and 64 KiB blocks fill it to within two pages", kernelMem, lim.kernelMemory)
			}
			if tableElems != lim.tableElements {
				t.Errorf("the table grew to %d elements; its limit is %d", tableElems, lim.tableElements)
			}
			if total > memory {
				t.Errorf("the Store holds %d bytes; [limits] memory is %d", total, memory)
			}
			if gerr := call("nop", nil); gerr != nil {
				t.Errorf("a call after the limits were reached: %v", gerr)
			}
		})
	}
}

// TestStoreRefusesMore: a module cannot multiply the limits with more memories or tables, nor
// start above them; the load fails saying which limit refused.
func TestStoreRefusesMore(t *testing.T) {
	lim := limitsFor(64 << 20)
	tests := []struct {
		name, wat, want string
	}{
		{"100 memories", `(module ` + strings.Repeat(`(memory 1000)`, 100) + `)`,
			"the module defines more than one linear memory; a capsule may have one (of at most 48 MiB (three quarters of [limits] memory, 64 MiB))"},
		{"2 memories", `(module (memory 1) (memory 1))`, "the module defines more than one linear memory"},
		{"2 tables", `(module (table 1 funcref) (table 1 funcref))`, "the module defines more than one table; a capsule may have one (of at most 524288 elements)"},
		{"memory starts above its share", `(module (memory 769))`,
			"the module's memory starts at 769 pages (49216 KiB), more than the guest's limit of 48 MiB (three quarters of [limits] memory, 64 MiB)"},
		{"table starts above its share", `(module (table 524289 funcref))`,
			"the module's table starts with 524289 elements, more than the limit of 524288"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := watGuest(t, testEngine(t, false), tc.wat, guestConfig{limits: lim, callTimeout: time.Minute})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("instantiate: %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
	// At the limits, both load.
	for _, wat := range []string{`(module (memory 768))`, `(module (table 524288 funcref))`} {
		if _, _, err := watGuest(t, testEngine(t, false), wat, guestConfig{limits: lim, callTimeout: time.Minute}); err != nil {
			t.Errorf("%s: %v", wat, err)
		}
	}
}

// TestStartFunction is hole 5: a module with a start section loads and runs, with and without
// fuel metering, and its start function runs under the call's time limit and fuel like a call.
func TestStartFunction(t *testing.T) {
	spin := `(module (func $start (loop $l (br $l))) (start $start))`
	exits := `(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func $start (call $exit (i32.const 7))) (start $start))`
	tests := []struct {
		name    string
		fuel    uint64
		timeout time.Duration
		wat     string
		wantErr string // "" means it loads and greet answers
	}{
		{name: "loads", timeout: time.Minute, wat: readWAT(t, "start.wat")},
		{name: "loads with fuel", fuel: 1_000_000, timeout: time.Minute, wat: readWAT(t, "start.wat")},
		{name: "endless start hits the time limit", timeout: 200 * time.Millisecond, wat: spin,
			wantErr: "call to the start function hit its time limit of 200ms and was interrupted"},
		{name: "endless start runs out of fuel", fuel: 1_000_000, timeout: time.Minute, wat: spin,
			wantErr: "call to the start function ran out of fuel ([limits] fuel)"},
		{name: "start calls proc_exit", timeout: time.Minute, wat: exits,
			wantErr: "call to the start function: the guest exited with status 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := testEngine(t, tc.fuel > 0)
			g, v, err := watGuest(t, e, tc.wat, guestConfig{limits: limitsFor(64 << 20), callTimeout: tc.timeout, fuel: tc.fuel})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("instantiate: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("instantiate: %v", err)
			}
			out, gerr, _ := e.call(context.Background(), g, v, "greet", nil, tc.timeout)
			if gerr != nil || string(out) != "hello from a start section" {
				t.Fatalf("greet = %q, %v", out, gerr)
			}
		})
	}
}

// TestProcExitStatus is the second half of hole 5: whatever status a guest gives proc_exit is
// reported as given (Extism reports 500 and -1; wasmtime's own proc_exit traps on anything outside
// [0, 126)), and proc_exit(0) is a successful end of the call.
func TestProcExitStatus(t *testing.T) {
	wat := `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "exit") (result i32)
    (call $exit (i32.wrap_i64 (call $input_load_u64 (i64.const 0))))
    (i32.const 9)))`
	e := testEngine(t, false)
	for _, status := range []int32{0, 1, 125, 126, 255, 500, -1, math.MinInt32} {
		t.Run(strconv.Itoa(int(status)), func(t *testing.T) {
			g, v, err := watGuest(t, e, wat, guestConfig{limits: limitsFor(64 << 20), callTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			out, gerr, trapped := e.call(context.Background(), g, v, "exit", u64(uint64(uint32(status))), time.Minute)
			if status == 0 {
				if gerr != nil || trapped || out != nil {
					t.Fatalf("proc_exit(0) = %q, %v, trapped %v; want a successful call with no output", out, gerr, trapped)
				}
				return
			}
			want := fmt.Sprintf("call to exit: the guest exited with status %d", status)
			if gerr.GetKind() != pb.GuestError_EXIT || gerr.GetExitCode() != status || gerr.GetMessage() != want {
				t.Fatalf("proc_exit(%d) = %v, want EXIT %d %q", status, gerr, status, want)
			}
		})
	}
}
