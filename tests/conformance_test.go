package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
)

// The Extism Go SDK ships the plugins its own tests run, compiled with the Rust, Go (TinyGo and
// standard Go), C and Haskell PDKs, in its module's wasm/ folder. TestExtismConformance runs every
// one of them through astrid-host call with the inputs, config and options of the SDK's
// extism_test.go, and asserts the outputs, errors and log lines that test documents. The plugins
// that need something this host does not offer are listed in extismUnsupported with the reason,
// and asserted to fail in the way the reason says. docs/extism-compatibility.md is the table for
// readers.
const (
	extismSDKModule  = "github.com/extism/go-sdk"
	extismSDKVersion = "v1.7.1"
)

// extismLog is a line the host must (or must not) log for the capsule: hclog's level tag and the
// guest's message, as in "[INFO]  astrid-host.log: this is an info log: source=log".
type extismLog struct {
	level string // TRACE, DEBUG, INFO, WARN or ERROR
	msg   string
}

// extismCase is one call of a supported plugin.
type extismCase struct {
	name   string // subtest name
	plugin string // file under the SDK's wasm/ folder
	export string
	// args are the flags of the call; "{{tmp}}" is replaced by the test's temporary directory.
	args       []string
	wantCode   int
	wantStdout string   // exact, when wantCode is 0 and check is nil
	wantStderr []string // substrings of stderr
	wantLogs   []extismLog
	notStderr  []string      // substrings that must not be in stderr (log lines below the level)
	maxElapsed time.Duration // the whole astrid-host run, when set
	check      func(t *testing.T, res cliResult)
	upstream   string // what extism_test.go checks with this plugin
}

// extismUnsupportedCase is a plugin (or one use of it) that needs something this host
// deliberately does not offer, with how its failure must look.
type extismUnsupportedCase struct {
	name       string
	plugin     string
	export     string
	args       []string
	reason     string
	wantCode   int
	wantStderr []string
}

// extismUnsupported lists every plugin this host cannot run as the SDK's tests do, and why. Each
// entry is asserted to fail in the documented way, so the list cannot silently go stale: when the
// host starts to support one of them, its entry fails and must move to the supported table.
var extismUnsupported = []extismUnsupportedCase{
	{name: "host.wasm", plugin: "host.wasm", export: "run_test",
		reason:   "imports extism:host/user::mult, a host function the Extism Go SDK's TestHost_simple defines for itself; this host offers no user host functions",
		wantCode: 2, wantStderr: []string{"the module imports extism:host/user::mult, which this host does not provide"}},
	{name: "host_memory.wasm", plugin: "host_memory.wasm", export: "run_test", args: []string{"--input", "Frodo"},
		reason:   "imports host::to_upper, a host function TestHost_memory defines for itself",
		wantCode: 2, wantStderr: []string{"the module imports host::to_upper, which this host does not provide"}},
	{name: "host_multiple.wasm say_green", plugin: "host_multiple.wasm", export: "say_green", args: []string{"--input", "John Doe"},
		reason:   "imports extism:host/user::hostGreenMessage and ::hostPurpleMessage, host functions TestHost_multiple defines for itself",
		wantCode: 2, wantStderr: []string{
			"the module imports extism:host/user::hostGreenMessage, extism:host/user::hostPurpleMessage, which this host does not provide"}},
	{name: "host_multiple.wasm say_purple", plugin: "host_multiple.wasm", export: "say_purple", args: []string{"--input", "Jane Doe"},
		reason:   "as say_green: the module's custom imports fail the load before any export runs",
		wantCode: 2, wantStderr: []string{
			"the module imports extism:host/user::hostGreenMessage, extism:host/user::hostPurpleMessage, which this host does not provide"}},
	{name: "main.wasm", plugin: "main.wasm", export: "run_test", args: []string{"--input", "benjamin"},
		reason:   "imports lib::capitalize from lib.wasm: TestModuleLinking links two modules in one manifest; a capsule here is one module ([[component]] link is not implemented)",
		wantCode: 2, wantStderr: []string{"the module imports lib::capitalize, which this host does not provide"}},
	{name: "lib.wasm", plugin: "lib.wasm", export: "capitalize", args: []string{"--input", "benjamin"},
		reason:   "the library half of TestModuleLinking: capitalize takes and returns an i64 handle, so it is not a callable plugin export",
		wantCode: 1, wantStderr: []string{`error: export "capitalize" has a signature other than () -> i32 or () -> ()`}},
	{name: "nested.c.instr.wasm", plugin: "nested.c.instr.wasm", export: "_start", args: []string{"--input", "hello world"},
		reason:   "instrumented for the Dylibso Observe SDK (TestObserve): imports dylibso_observe::instrument_*, which this host does not offer",
		wantCode: 2, wantStderr: []string{
			"the module imports dylibso_observe::instrument_enter, dylibso_observe::instrument_exit, dylibso_observe::instrument_memory_grow, which this host does not provide"}},
	{name: "fs.wasm", plugin: "fs.wasm", export: "run_test",
		reason:   "TestFS preopens testdata/ at /mnt; this host gives guests no preopened directories, so the guest cannot open /mnt/test.txt, logs why and returns 1",
		wantCode: 1, wantStderr: []string{"open /mnt/test.txt: ", "error: call to run_test returned 1"}},
	{name: "fs_std.wasm", plugin: "fs_std.wasm", export: "run_test",
		reason:   "the standard-Go build of fs.wasm (not used by extism_test.go): needs the /mnt preopen too",
		wantCode: 1, wantStderr: []string{"open /mnt/test.txt: ", "error: call to run_test returned 1"}},
	{name: "read_write.wasm try_read", plugin: "read_write.wasm", export: "try_read", args: []string{"--config", "path=/mnt/test.txt"},
		reason:   "TestReadOnlyMount preopens testdata/ read-only at /mnt; no preopens here",
		wantCode: 1, wantStderr: []string{
			`error: Failed to read file: failed to find a pre-opened file descriptor through which "/mnt/test.txt" could be opened`}},
	{name: "read_write.wasm try_write", plugin: "read_write.wasm", export: "try_write", args: []string{"--config", "path=/mnt/test.txt", "--input", "hello hello!"},
		reason:   "TestReadOnlyMount expects \"Failed to write file\" from the read-only mount; with no preopen at all the guest fails earlier",
		wantCode: 1, wantStderr: []string{`failed to find a pre-opened file descriptor through which "/mnt/test.txt" could be opened`}},
}

func TestExtismConformance(t *testing.T) {
	sdkDir := extismSDKDir(t)
	wasmDir := filepath.Join(sdkDir, "wasm")
	state := t.TempDir() // shared, so each plugin is compiled once
	tmp := t.TempDir()

	// The local server of the HTTP cases; it counts requests per path so that a refused request
	// is shown never to have left the host.
	var (
		hitsMu sync.Mutex
		hits   = map[string][]string{} // path -> methods
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsMu.Lock()
		hits[r.URL.Path] = append(hits[r.URL.Path], r.Method)
		hitsMu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Conformance", "extism")
		io.WriteString(w, "<p>hello from the conformance test</p>")
	}))
	defer srv.Close()
	requestsTo := func(path string) []string {
		hitsMu.Lock()
		defer hitsMu.Unlock()
		return slices.Clone(hits[path])
	}
	headersReq := func(path string) string { return fmt.Sprintf(`{"url": "%s%s"}`, srv.URL, path) }
	refused := func(path string) func(t *testing.T, res cliResult) {
		return func(t *testing.T, res cliResult) {
			if got := requestsTo(path); len(got) != 0 {
				t.Errorf("the refused request reached the server: %v", got)
			}
		}
	}

	// replace.wasm's input and output are the benchmark strings of extism_test.go.
	regex2048, match2048 := extismBenchStrings(t, filepath.Join(sdkDir, "extism_test.go"))
	regex65536, match65536 := strings.Repeat(regex2048, 32), strings.Repeat(match2048, 32)
	if err := os.WriteFile(filepath.Join(tmp, "regex65536.txt"), []byte(regex65536), 0o644); err != nil {
		t.Fatal(err)
	}

	allLevels := []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}
	logMsgs := map[string]string{
		"TRACE": "this is a trace log", "DEBUG": "this is a debug log", "INFO": "this is an info log",
		"WARN": "this is a warning log", "ERROR": "this is an error log",
	}
	// logCase runs log.wasm at level (default: the CLI's warn) and wants the lines at or above it.
	logCase := func(level string, from int) extismCase {
		c := extismCase{name: "log.wasm level " + level, plugin: "log.wasm", export: "run_test",
			upstream: "TestLog_default/TestLog_custom: lines at or above the level reach the logger, lines below do not"}
		if level != "default" {
			c.args = []string{"--log-level", strings.ToLower(level)}
		}
		for i, l := range allLevels {
			if i >= from {
				c.wantLogs = append(c.wantLogs, extismLog{l, logMsgs[l]})
			} else {
				c.notStderr = append(c.notStderr, logMsgs[l])
			}
		}
		return c
	}

	cases := []extismCase{
		// Rust PDK: count_vowels reads config "vowels" and keeps a running total in var "total".
		{name: "count_vowels.wasm hello world", plugin: "count_vowels.wasm", export: "count_vowels", args: []string{"--input", "hello world"},
			wantStdout: `{"count":3,"total":3,"vowels":"aeiouAEIOU"}`, upstream: "TestCountVowels, TestCallFunction"},
		{name: "count_vowels.wasm aaaaaa", plugin: "count_vowels.wasm", export: "count_vowels", args: []string{"--input", "aaaaaa"},
			wantStdout: `{"count":6,"total":6,"vowels":"aeiouAEIOU"}`, upstream: "TestCallFunction"},
		{name: "count_vowels.wasm empty input", plugin: "count_vowels.wasm", export: "count_vowels",
			wantStdout: `{"count":0,"total":0,"vowels":"aeiouAEIOU"}`, upstream: "TestCallFunction"},
		{name: "count_vowels.wasm bbbbbbb", plugin: "count_vowels.wasm", export: "count_vowels", args: []string{"--input", "bbbbbbb"},
			wantStdout: `{"count":0,"total":0,"vowels":"aeiouAEIOU"}`, upstream: "TestCallFunction"},
		{name: "count_vowels.wasm aaa", plugin: "count_vowels.wasm", export: "count_vowels", args: []string{"--input", "aaa"},
			wantStdout: `{"count":3,"total":3,"vowels":"aeiouAEIOU"}`, upstream: "TestMultipleCallsOutput (first call)"},
		{name: "count_vowels.wasm config vowels", plugin: "count_vowels.wasm", export: "count_vowels",
			args: []string{"--input", "hello world", "--config", "vowels=o"}, wantStdout: `{"count":2,"total":2,"vowels":"o"}`,
			upstream: "the plugin's config key \"vowels\" (not set by extism_test.go)"},

		// C: the kernel's alloc/store/free, output, error_set.
		{name: "alloc.wasm", plugin: "alloc.wasm", export: "run_test", wantStdout: "", upstream: "TestAlloc"},
		{name: "alloc.wasm unknown export", plugin: "alloc.wasm", export: "i_dont_exist",
			wantCode: 1, wantStderr: []string{`error: export "i_dont_exist" does not exist`}, upstream: "TestFailOnUnknownFunction"},
		{name: "hello.wasm", plugin: "hello.wasm", export: "run_test", wantStdout: "Hello, world!", upstream: "TestHello"},
		{name: "fail.wasm", plugin: "fail.wasm", export: "run_test",
			wantCode: 1, wantStderr: []string{"error: Some error message\n"}, upstream: "TestFail: exit 1 and the message error_set gave"},

		// Hand-written module: input_offset and length of the input block.
		{name: "input_offset.wasm hello world", plugin: "input_offset.wasm", export: "input_offset_length", args: []string{"--input", "hello world"},
			wantStdout: "\x0b\x00\x00\x00\x00\x00\x00\x00", upstream: "TestInputOffset: output[0] is the input length (11)"},
		{name: "input_offset.wasm 1000 bytes", plugin: "input_offset.wasm", export: "input_offset_length", args: []string{"--input", strings.Repeat("x", 1000)},
			wantStdout: "\xe8\x03\x00\x00\x00\x00\x00\x00", upstream: "TestInputOffset with a longer input"},

		// TinyGo go-pdk.
		{name: "config.wasm thing=hello", plugin: "config.wasm", export: "run_test", args: []string{"--config", "thing=hello"},
			wantStdout: `{"config": "hello"}`, upstream: "TestConfig"},
		{name: "config.wasm unset", plugin: "config.wasm", export: "run_test",
			wantStdout: `{"config": "<unset by host>"}`, upstream: "TestConfig"},
		{name: "noop.wasm", plugin: "noop.wasm", export: "run_test", wantStdout: "", upstream: "BenchmarkNoop"},
		{name: "replace.wasm 2048", plugin: "replace.wasm", export: "run_test", args: []string{"--input", regex2048},
			wantStdout: match2048, upstream: "BenchmarkReplace: \"test\" becomes \"wasm\""},
		{name: "replace.wasm 65536", plugin: "replace.wasm", export: "run_test", args: []string{"--input-file", "{{tmp}}/regex65536.txt"},
			wantStdout: match65536, upstream: "BenchmarkReplace (largest input)"},
		{name: "replace.wasm empty", plugin: "replace.wasm", export: "run_test", wantStdout: "", upstream: "BenchmarkReplace (empty)"},
		{name: "var.wasm", plugin: "var.wasm", export: "run_test", wantStdout: "a: 0",
			upstream: "TestVar presets var a=10 and expects 20, then 40; with no way to preset a var the plugin finds none, reports 0 and stores 0*2"},
		{name: "exit.wasm code=0", plugin: "exit.wasm", export: "_start", args: []string{"--config", "code=0"}, wantStdout: "",
			upstream: "TestExit: proc_exit(0) is success"},
		{name: "exit.wasm code=abc", plugin: "exit.wasm", export: "_start", args: []string{"--config", "code=abc"},
			wantCode: 1, wantStderr: []string{"error: call to _start: the guest exited with status 1"}, upstream: "TestExit: exit code 1"},
		{name: "exit.wasm code unset", plugin: "exit.wasm", export: "_start",
			wantCode: 1, wantStderr: []string{"error: call to _start: the guest exited with status 2"}, upstream: "TestExit: exit code 2"},
		{name: "exit.wasm code=125", plugin: "exit.wasm", export: "_start", args: []string{"--config", "code=125"},
			wantCode: 1, wantStderr: []string{"error: call to _start: the guest exited with status 125"}, upstream: "TestExit (the largest status wasmtime's own proc_exit lets through)"},
		{name: "exit.wasm code=500", plugin: "exit.wasm", export: "_start", args: []string{"--config", "code=500"},
			wantCode: 1, wantStderr: []string{"error: call to _start: the guest exited with status 500"}, upstream: "TestExit: exit code 500"},
		{name: "exit.wasm code=-1", plugin: "exit.wasm", export: "_start", args: []string{"--config", "code=-1"},
			wantCode: 1, wantStderr: []string{"error: call to _start: the guest exited with status -1"}, upstream: "TestExit: exit code 0xffffffff (-1 as an i32)"},
		{name: "sleep.wasm duration=0", plugin: "sleep.wasm", export: "run_test", args: []string{"--config", "duration=0"},
			wantStdout: "slept for 0 seconds", upstream: "TestContextCancel, TestEnableExperimentalFeature"},
		{name: "sleep.wasm duration=1", plugin: "sleep.wasm", export: "run_test", args: []string{"--config", "duration=1"},
			wantStdout: "slept for 1 seconds", upstream: "the busy sleep reads the WASI clock"},
		{name: "sleep.wasm time limit", plugin: "sleep.wasm", export: "run_test", args: []string{"--config", "duration=10", "--timeout", "100ms"},
			wantCode: 1, wantStderr: []string{"error: call to run_test hit its time limit of 100ms"}, maxElapsed: 6 * time.Second,
			upstream: "TestTimeout, TestJsonManifest: timeout_ms 100 ends the call (\"context deadline exceeded\")"},
		{name: "println.wasm info", plugin: "println.wasm", export: "run_test", args: []string{"--input", "foo", "--log-level", "info"},
			wantStdout: "", wantLogs: []extismLog{{"INFO", "this was printed from the plugin foo: source=stdout"}},
			upstream: "not in extism_test.go: fmt.Println to WASI stdout; here a log line, never the call's output"},
		{name: "println.wasm default level", plugin: "println.wasm", export: "run_test", args: []string{"--input", "foo"},
			wantStdout: "", notStderr: []string{"this was printed from the plugin"},
			upstream: "WASI stdout is logged at info, below the CLI's default warn"},
		logCase("TRACE", 0),
		logCase("DEBUG", 1),
		logCase("INFO", 2),
		logCase("default", 3), // warn
		logCase("ERROR", 4),
		{name: "log.wasm level off", plugin: "log.wasm", export: "run_test", args: []string{"--log-level", "off"},
			notStderr: []string{logMsgs["TRACE"], logMsgs["DEBUG"], logMsgs["INFO"], logMsgs["WARN"], logMsgs["ERROR"]},
			upstream:  "no line at level off"},

		// HTTP: http.wasm asks for a fixed public URL, so only its refusals run here; http_headers.wasm
		// takes the URL as input and reaches the local server.
		{name: "http.wasm no allow-host", plugin: "http.wasm", export: "run_test",
			wantCode: 1, wantStderr: []string{"jsonplaceholder.typicode.com", "is not allowed"},
			upstream: "TestHTTP_denied: no allowed hosts, every request is refused"},
		{name: "http.wasm other host allowed", plugin: "http.wasm", export: "run_test", args: []string{"--allow-host", "google.com"},
			wantCode: 1, wantStderr: []string{"jsonplaceholder.typicode.com", "is not allowed"},
			upstream: "TestHTTP_denied: a host the allow-list does not match is refused"},
		{name: "http_headers.wasm allowed", plugin: "http_headers.wasm", export: "http_get",
			args:     []string{"--input", headersReq("/allowed"), "--allow-host", "127.0.0.1", "--allow-private-network"},
			upstream: "TestHTTPHeaders_allowed: the response headers, keys in lower case",
			check: func(t *testing.T, res cliResult) {
				var headers map[string]string
				if err := json.Unmarshal([]byte(res.stdout), &headers); err != nil {
					t.Fatalf("output is not a JSON object of strings: %v\n%q", err, res.stdout)
				}
				for k, want := range map[string]string{"content-type": "text/html; charset=utf-8", "x-conformance": "extism"} {
					if headers[k] != want {
						t.Errorf("header %q = %q, want %q (all: %v)", k, headers[k], want, headers)
					}
				}
				if got := requestsTo("/allowed"); !slices.Equal(got, []string{"GET"}) {
					t.Errorf("the server saw %v, want one GET", got)
				}
			}},
		{name: "http_headers.wasm no allow-host", plugin: "http_headers.wasm", export: "http_get",
			args:     []string{"--input", headersReq("/no-allow-host"), "--allow-private-network"},
			wantCode: 1, wantStderr: []string{"127.0.0.1", "is not allowed"}, check: refused("/no-allow-host"),
			upstream: "TestHTTP_denied's rule for a loopback server: not on the allow-list, refused before any connection"},
		{name: "http_headers.wasm loopback without allow-private-network", plugin: "http_headers.wasm", export: "http_get",
			args:     []string{"--input", headersReq("/no-private"), "--allow-host", "127.0.0.1"},
			wantCode: 1, wantStderr: []string{"127.0.0.1", "private"}, check: refused("/no-private"),
			upstream: "astrid only (no Extism test): an allowed host that is a loopback address is refused unless --allow-private-network"},

		// Standard Go (wasip1): a command module called through _start, and its count_vowels twin.
		{name: "std_command.wasm", plugin: "std_command.wasm", export: "_start", args: []string{"--input", "ben"},
			wantStdout: "hello ben", upstream: "TestCountVowelsStdGo"},
		{name: "count_vowels_std.wasm", plugin: "count_vowels_std.wasm", export: "_start", args: []string{"--input", "hello world"},
			wantStdout: `{"count": 3, "config": "<unset by host>", "a": "this is var a"}`,
			upstream:   "not in extism_test.go (go-pdk example/countvowels/std_main.go): var_set then var_get in one call, config_get"},
		{name: "count_vowels_std.wasm config thing", plugin: "count_vowels_std.wasm", export: "_start",
			args:       []string{"--input", "hello world", "--config", "thing=hello"},
			wantStdout: `{"count": 3, "config": "hello", "a": "this is var a"}`, upstream: "as above, with config thing"},

		// Haskell PDK.
		{name: "hello_haskell.wasm", plugin: "hello_haskell.wasm", export: "testing",
			args: []string{"--input", "John", "--config", "greeting=Howdy"}, wantStdout: "Howdy, John",
			upstream: "TestHelloHaskell: the SDK runs hs_init before the first call (its log line \"Initialized Haskell language runtime.\" is the SDK's, not the guest's)"},
	}

	// Every plugin in wasm/ is in one of the tables, and every table entry names a real plugin.
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.plugin] = true
	}
	for _, c := range extismUnsupported {
		covered[c.plugin] = true
	}
	files, err := filepath.Glob(filepath.Join(wasmDir, "*.wasm"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no plugins in %s (%v)", wasmDir, err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s is in neither the supported nor the unsupported table", filepath.Base(f))
		}
		delete(covered, filepath.Base(f))
	}
	for p := range covered {
		t.Errorf("the tables name %s, which %s does not have", p, wasmDir)
	}

	expand := func(args []string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = strings.ReplaceAll(a, "{{tmp}}", tmp)
		}
		return out
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"call", filepath.Join(wasmDir, tc.plugin), tc.export}, expand(tc.args)...)
			start := time.Now()
			res := runCLI(t, state, args...)
			elapsed := time.Since(start)
			if res.code != tc.wantCode {
				t.Fatalf("exit code %d, want %d (upstream: %s)\nstdout: %q\nstderr:\n%s", res.code, tc.wantCode, tc.upstream, extismClip(res.stdout), res.stderr)
			}
			switch {
			case tc.wantCode != 0 && res.stdout != "":
				t.Errorf("stdout %q on failure, want nothing", extismClip(res.stdout))
			case tc.wantCode == 0 && tc.check == nil && res.stdout != tc.wantStdout:
				t.Errorf("stdout %q, want %q (upstream: %s)", extismClip(res.stdout), extismClip(tc.wantStdout), tc.upstream)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
			capsule := extismCapsuleID(t, filepath.Join(wasmDir, tc.plugin))
			for _, l := range tc.wantLogs {
				if !extismHasLogLine(res.stderr, l.level, capsule, l.msg) {
					t.Errorf("stderr lacks a [%s] line \"astrid-host.%s: %s\":\n%s", l.level, capsule, l.msg, res.stderr)
				}
			}
			for _, not := range tc.notStderr {
				if strings.Contains(res.stderr, not) {
					t.Errorf("stderr has %q, which it must not:\n%s", not, res.stderr)
				}
			}
			if tc.maxElapsed > 0 && elapsed > tc.maxElapsed {
				t.Errorf("astrid-host ran %s, want at most %s", elapsed, tc.maxElapsed)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}

	// TestCancel: cancelling the call's context ends a busy guest at once. The CLI's context is
	// cancelled by SIGINT.
	t.Run("sleep.wasm cancelled by SIGINT", func(t *testing.T) {
		extismCancel(t, state, filepath.Join(wasmDir, "sleep.wasm"))
	})

	// TestMultipleCallsOutput: vars live as long as the plugin instance, so the second call adds to
	// the first one's total. One CLI run makes one call; this runs the two in one instance.
	t.Run("count_vowels.wasm two calls in one instance", func(t *testing.T) {
		h := newHost(t)
		m, err := manifest.ForWasm(filepath.Join(wasmDir, "count_vowels.wasm"))
		if err != nil {
			t.Fatal(err)
		}
		inst, _, err := h.Load(context.Background(), m, host.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct{ in, want string }{
			{"aaa", `{"count":3,"total":3,"vowels":"aeiouAEIOU"}`},
			{"bbba", `{"count":1,"total":4,"vowels":"aeiouAEIOU"}`},
		} {
			out, err := inst.Call(context.Background(), "count_vowels", []byte(step.in), 0)
			if err != nil {
				t.Fatalf("count_vowels(%q): %v", step.in, err)
			}
			if string(out) != step.want {
				t.Errorf("count_vowels(%q) = %s, want %s", step.in, out, step.want)
			}
		}
	})

	for _, tc := range extismUnsupported {
		t.Run("unsupported/"+tc.name, func(t *testing.T) {
			args := append([]string{"call", filepath.Join(wasmDir, tc.plugin), tc.export}, tc.args...)
			res := runCLI(t, state, args...)
			if res.code != tc.wantCode {
				t.Fatalf("exit code %d, want %d (unsupported: %s)\nstdout: %q\nstderr:\n%s", res.code, tc.wantCode, tc.reason, extismClip(res.stdout), res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", extismClip(res.stdout))
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q (unsupported: %s):\n%s", want, tc.reason, res.stderr)
				}
			}
		})
	}
}

// extismCancel starts a 30-second busy sleep, sends SIGINT once the capsule is loaded, and wants
// the call to end at once with a cancellation error.
func extismCancel(t *testing.T, state, sleepWasm string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostBin, "call", sleepWasm, "run_test", "--config", "duration=30", "--log-level", "info")
	cmd.Env = append(os.Environ(), "ASTRID_STATE_DIR="+state)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		all    strings.Builder
		loaded = make(chan struct{})
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "capsule loaded") {
				once.Do(func() { close(loaded) })
			}
		}
	}()
	select {
	case <-loaded:
	case <-done:
		cmd.Wait()
		t.Fatalf("astrid-host ended before the capsule loaded:\n%s", all.String())
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("the capsule did not load within a minute")
	}
	time.Sleep(300 * time.Millisecond) // into the busy loop
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-done
	err = cmd.Wait()
	took := time.Since(signalled)
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if took > 5*time.Second {
		t.Errorf("astrid-host took %s after SIGINT to end the 30 s sleep", took)
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	for _, want := range []string{"call to run_test", "context canceled"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("stderr lacks %q (upstream TestCancel: \"module closed with context canceled\"):\n%s", want, all.String())
		}
	}
}

// extismSDKDir is the directory of the Extism Go SDK module: from go.mod when the repository
// requires it, else from the module cache (downloading it if need be).
func extismSDKDir(t *testing.T) string {
	t.Helper()
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", extismSDKModule)
	list.Dir = repoRoot
	list.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	out, listErr := list.Output()
	if dir := strings.TrimSpace(string(out)); listErr == nil && dir != "" {
		t.Logf("Extism Go SDK: %s (go list -m)", dir)
		return dir
	}
	dl := exec.Command("go", "mod", "download", "-json", extismSDKModule+"@"+extismSDKVersion)
	dl.Dir = repoRoot
	dl.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := dl.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Dir == "" {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("cannot locate %s: go list -m: %v; go mod download: %v %s %s", extismSDKModule, listErr, err, info.Error, stderr)
	}
	t.Logf("Extism Go SDK: %s (go mod download %s@%s; go.mod does not require it)", info.Dir, extismSDKModule, extismSDKVersion)
	return info.Dir
}

// extismBenchStrings reads Regex2048 and Match2048, the input and expected output of
// BenchmarkReplace, from the SDK's extism_test.go.
func extismBenchStrings(t *testing.T, path string) (regex, match string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if i < len(vs.Values) {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						vals[name.Name] = s
					}
				}
			}
		}
		return true
	})
	regex, match = vals["Regex2048"], vals["Match2048"]
	if regex == "" || match == "" || regex == match {
		t.Fatalf("%s: no Regex2048/Match2048 string constants", path)
	}
	return regex, match
}

// extismCapsuleID is the capsule id the host gives a bare .wasm, the name its log lines carry.
func extismCapsuleID(t *testing.T, wasm string) string {
	t.Helper()
	m, err := manifest.ForWasm(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID()
}

// extismHasLogLine reports whether stderr has an hclog line at level for the capsule with msg.
func extismHasLogLine(stderr, level, capsule, msg string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "["+level+"]") && strings.Contains(line, "astrid-host."+capsule+": "+msg) {
			return true
		}
	}
	return false
}

// extismClip shortens long outputs in failure messages.
func extismClip(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}
