package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WAT guests for failures a Go guest cannot produce on demand.
const (
	// unreachableWAT executes `unreachable`, as a Rust panic or abort does.
	unreachableWAT = `(module (func (export "boom") (result i32) unreachable))`

	// echoWAT copies its input to its output with the kernel, 8 bytes at a time and the tail
	// byte by byte, as the Extism PDKs do.
	echoWAT = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "echo") (result i32)
    (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $input_length))
    (if (i64.eqz (local.get $n)) (then (return (i32.const 0))))
    (local.set $h (call $alloc (local.get $n)))
    (block $done8 (loop $copy8
      (br_if $done8 (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $n)))
      (call $store_u64 (i64.add (local.get $h) (local.get $i)) (call $input_load_u64 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $copy8)))
    (block $done1 (loop $copy1
      (br_if $done1 (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy1)))
    (call $output_set (local.get $h) (local.get $n))
    (i32.const 0)))`

	// growWAT grows its memory one page at a time until the limit refuses, then traps, as a
	// guest without a recovery path does.
	growWAT = `(module (memory (export "memory") 1)
  (func (export "grow") (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))`

	// missingImportWAT imports a host function no host provides.
	missingImportWAT = `(module (import "extism:host/user" "no_such_function" (func))
  (func (export "run") (result i32) (i32.const 0)))`
)

func TestCallCLI(t *testing.T) {
	hello, faulty := capsules["hello"], capsules["faulty"]
	wasmDir := t.TempDir()
	writeWAT := func(name, wat string) string {
		p := watModule(t, name, wat)
		dst := filepath.Join(wasmDir, name+".wasm")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	echo := writeWAT("echo", echoWAT)
	unreachable := writeWAT("unreachable", unreachableWAT)
	grow := writeWAT("grow", growWAT)
	missing := writeWAT("missing", missingImportWAT)
	notWasm := filepath.Join(wasmDir, "text.wasm")
	if err := os.WriteFile(notWasm, []byte("hello, not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact, when wantCode is 0
		wantStderr []string
	}{
		{name: "export output", args: []string{"call", hello, "greet", "--input", "world"}, wantStdout: "Hello, world!"},
		{name: "flags before positionals", args: []string{"call", "--input", "Ada", hello, "greet"}, wantStdout: "Hello, Ada!"},
		{name: "json output", args: []string{"call", hello, "count_vowels", "--input", "hello world"}, wantStdout: `{"count":3,"total":3,"vowels":"aeiouAEIOU"}`},
		{name: "bare wasm", args: []string{"call", echo, "echo", "--input", "abcdefghijk"}, wantStdout: "abcdefghijk"},
		{name: "empty input", args: []string{"call", echo, "echo"}, wantStdout: ""},
		{name: "error_set message verbatim", args: []string{"call", faulty, "fail", "--input", "disk on fire: départ"},
			wantCode: 1, wantStderr: []string{"error: disk on fire: départ\n"}},
		{name: "guest's own error", args: []string{"call", hello, "greet"},
			wantCode: 1, wantStderr: []string{"error: greet: input is empty; pass a name, e.g. --input world"}},
		{name: "unreachable", args: []string{"call", unreachable, "boom"},
			wantCode: 1, wantStderr: []string{"error: call to boom trapped: wasm `unreachable` instruction executed", "wasm backtrace:"}},
		{name: "go panic", args: []string{"call", faulty, "panic"},
			wantCode: 1, wantStderr: []string{"error: call to panic panicked: faulty: deliberate panic"}},
		{name: "infinite loop hits the time limit", args: []string{"call", faulty, "spin", "--timeout", "300ms"},
			wantCode: 1, wantStderr: []string{"error: call to spin hit its time limit of 300ms"}},
		{name: "sleep past the time limit", args: []string{"call", faulty, "sleep", "--input", "60000", "--timeout", "300ms"},
			wantCode: 1, wantStderr: []string{"error: call to sleep hit its time limit of 300ms"}},
		{name: "manifest call_timeout", args: []string{"call", faulty, "spin"},
			wantCode: 1, wantStderr: []string{"hit its time limit of 2s"}},
		{name: "go guest out of memory", args: []string{"call", faulty, "hog"},
			wantCode: 1, wantStderr: []string{"error: call to hog ran out of memory: the guest reached its limit of 24 MiB (three quarters of [limits] memory, 32 MiB)"}},
		{name: "wasm memory.grow past the limit", args: []string{"call", grow, "grow"},
			wantCode: 1, wantStderr: []string{"error: call to grow ran out of memory: the guest reached its limit of 48 MiB (three quarters of [limits] memory, 64 MiB)"}},
		{name: "stack overflow", args: []string{"call", faulty, "recurse"},
			wantCode: 1, wantStderr: []string{"error: call to recurse overflowed the WebAssembly stack"}},
		{name: "proc_exit", args: []string{"call", faulty, "exit"},
			wantCode: 1, wantStderr: []string{"error: call to exit: the guest exited with status 3"}},
		{name: "no such export", args: []string{"call", hello, "nope"},
			wantCode: 1, wantStderr: []string{`error: export "nope" does not exist; the capsule's callable exports are: count_vowels, greet`}},
		{name: "missing import fails the load", args: []string{"call", missing, "run"},
			wantCode: 2, wantStderr: []string{"extism:host/user::no_such_function, which this host does not provide"}},
		{name: "not webassembly", args: []string{"call", notWasm, "run"},
			wantCode: 2, wantStderr: []string{"error: "}},
		{name: "missing target", args: []string{"call", filepath.Join(wasmDir, "absent.wasm"), "run"},
			wantCode: 2, wantStderr: []string{"absent.wasm"}},
		{name: "usage: one positional", args: []string{"call", hello},
			wantCode: 2, wantStderr: []string{"want TARGET and EXPORT"}},
		{name: "usage: both inputs", args: []string{"call", hello, "greet", "--input", "a", "--input-file", "x"},
			wantCode: 2, wantStderr: []string{"--input and --input-file cannot both be given"}},
		{name: "usage: unknown flag", args: []string{"call", "--frobnicate", hello, "greet"},
			wantCode: 2, wantStderr: []string{"flag provided but not defined: -frobnicate"}},
	}
	state := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, state, tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %q\nstderr: %s", res.code, tc.wantCode, res.stdout, res.stderr)
			}
			if tc.wantCode == 0 && res.stdout != tc.wantStdout {
				t.Errorf("stdout %q, want %q", res.stdout, tc.wantStdout)
			}
			if tc.wantCode != 0 && res.stdout != "" {
				t.Errorf("stdout %q on failure, want nothing", res.stdout)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
		})
	}
}

func TestCallInputFile(t *testing.T) {
	echo := watModule(t, "echo", echoWAT)
	input := make([]byte, 1<<20+3) // 1 MiB and a tail that is not a multiple of 8
	for i := range input {
		input[i] = byte(i * 7)
	}
	in := filepath.Join(t.TempDir(), "input.bin")
	if err := os.WriteFile(in, input, 0o644); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, t.TempDir(), "call", echo, "echo", "--input-file", in)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if res.stdout != string(input) {
		t.Fatalf("output differs from the %d-byte input (got %d bytes)", len(input), len(res.stdout))
	}
}

func TestCallHelp(t *testing.T) {
	for _, cmd := range []string{"run", "call", "check", "status"} {
		res := runCLI(t, t.TempDir(), cmd, "--help")
		if res.code != 0 || !strings.Contains(res.stderr, "Usage: astrid-host "+cmd) {
			t.Errorf("%s --help: exit %d, stderr:\n%s", cmd, res.code, res.stderr)
		}
	}
	if res := runCLI(t, t.TempDir(), "frob"); res.code != 2 || !strings.Contains(res.stderr, `unknown command "frob"`) {
		t.Errorf("unknown command: exit %d, stderr:\n%s", res.code, res.stderr)
	}
}

// configWAT outputs the config value named by its input, and fails when it is not set.
const configWAT = `(module
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "get") (result i32) (local $v i64)
    (local.set $v (call $config_get (call $input_offset)))
    (if (i64.eqz (local.get $v)) (then (return (i32.const 1))))
    (call $output_set (local.get $v) (call $length (local.get $v)))
    (i32.const 0)))`

func TestCallConfig(t *testing.T) {
	wasm := watModule(t, "config", configWAT)
	dir := filepath.Dir(wasm)
	toml := `[package]
name = "config"
version = "1.0.0"

[[component]]
file = "config.wasm"

[env]
greeting = { type = "string", default = "hello from [env]" }
limits = { type = "string", default = { retries = 3 } }
`
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"env default", []string{"call", dir, "get", "--input", "greeting"}, 0, "hello from [env]"},
		{"non-string default as JSON", []string{"call", dir, "get", "--input", "limits"}, 0, `{"retries":3}`},
		{"--config overrides", []string{"call", dir, "get", "--input", "greeting", "--config", "greeting=hi"}, 0, "hi"},
		{"--config on a bare wasm", []string{"call", "--config", "k=v=w", wasm, "get", "--input", "k"}, 0, "v=w"},
		{"unset key", []string{"call", dir, "get", "--input", "nothing"}, 1, "error: call to get returned 1 without an error message"},
		{"malformed --config", []string{"call", dir, "get", "--config", "novalue"}, 2, `"novalue" is not KEY=VALUE`},
	}
	state := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, state, tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", res.code, tc.wantCode, res.stderr)
			}
			if tc.wantCode == 0 && res.stdout != tc.want {
				t.Fatalf("stdout %q, want %q", res.stdout, tc.want)
			}
			if tc.wantCode != 0 && !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, res.stderr)
			}
		})
	}
}

// TestCallOutOfFuel: a capsule with [limits] fuel runs in a shim whose engine meters fuel, and a
// call that uses it up fails naming fuel, not time.
func TestCallOutOfFuel(t *testing.T) {
	dir := t.TempDir()
	wasm, err := os.ReadFile(filepath.Join(capsules["faulty"], "faulty.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "faulty.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	toml := "[package]\nname = \"metered\"\nversion = \"1.0.0\"\n[[component]]\nfile = \"faulty.wasm\"\n[limits]\nfuel = 50000000\ncall_timeout = \"60s\"\n"
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if res := runCLI(t, state, "call", dir, "echo", "--input", "metered"); res.code != 0 || res.stdout != "metered" {
		t.Fatalf("echo under fuel: exit %d, stdout %q, stderr:\n%s", res.code, res.stdout, res.stderr)
	}
	res := runCLI(t, state, "call", dir, "spin")
	if res.code != 1 || !strings.Contains(res.stderr, "error: call to spin ran out of fuel ([limits] fuel)") {
		t.Fatalf("spin under fuel: exit %d, stderr:\n%s", res.code, res.stderr)
	}
}
