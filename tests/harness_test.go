package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/sandbox"
)

// The harness builds the real binaries and capsules once per test run into binDir.
var (
	binDir  string
	hostBin string
	shimBin string
	// helperBin is astrid-sandbox, next to hostBin as the CLI expects it: testSandbox's helper.
	helperBin string
	repoRoot  string
	capsules  = map[string]string{} // capsule name -> built capsule directory
	buildLogs bytes.Buffer
	// testSandbox confines the shims and processes of every test host: the real sandbox, through
	// the built astrid-sandbox as its helper (verified and rechecked as the CLI does), with policy required where this machine has every
	// layer it needs (best-effort otherwise, logged once).
	testSandbox *sandbox.Sandbox
	// sharedModules is the module cache of every test host that keeps its default state dir
	// (see newHost).
	sharedModules string
)

// builtCapsules are the Go capsules the tests run: example and test-only ones.
var builtCapsules = map[string]string{
	"hello":    "examples/hello",
	"counter":  "examples/counter",
	"demo":     "examples/demo",
	"ping":     "examples/ping",
	"pong":     "examples/pong",
	"faulty":   "tests/testdata/capsules/faulty",
	"ipc":      "tests/testdata/capsules/ipc",
	"kv":       "tests/testdata/capsules/kv",
	"memory":   "examples/memory",
	"procs":    "tests/testdata/capsules/procs",
	"raw":      "tests/testdata/capsules/raw",
	"relay":    "tests/testdata/capsules/relay",
	"hook":     "tests/testdata/capsules/hook",
	"authz":    "tests/testdata/capsules/authz",
	"runner":   "examples/runner",
	"session":  "examples/session",
	"bridge":   "examples/bridge",
	"buscount": "tests/testdata/capsules/buscount",
}

func TestMain(m *testing.M) {
	if os.Getenv(echoPeerEnv) != "" {
		os.Exit(echoPeerMain()) // the peer of the benchmarks' socket baseline (bench_socket_test.go)
	}
	if os.Getenv(netClientEnv) != "" {
		os.Exit(netClientMain()) // a socket client run as another user (TestNetPeerUID)
	}
	if os.Getenv(natsPeerEnv) != "" {
		os.Exit(natsPeerMain()) // a plain NATS client (BenchmarkBusNATS)
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: setup: %v\n%s", err, buildLogs.String())
		os.Exit(2)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "astrid-tests-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir = filepath.Join(dir, "bin")
	sharedModules = filepath.Join(dir, "modules")
	if err := os.Mkdir(sharedModules, 0o700); err != nil {
		return 0, err
	}
	hostBin = filepath.Join(binDir, "astrid-host")
	shimBin = filepath.Join(binDir, "astrid-shim")
	if err := goBuild(nil, "-o", hostBin, "./cmd/astrid-host"); err != nil {
		return 0, err
	}
	// As the Makefile builds it: grpcnotrace leaves out gRPC's x/net/trace (net/http,
	// html/template), which the shim never uses and every start would initialise.
	if err := goBuild(nil, "-tags", "grpcnotrace", "-o", shimBin, "./cmd/astrid-shim"); err != nil {
		return 0, err
	}
	helperBin = filepath.Join(binDir, host.HelperName)
	if err := goBuild([]string{"CGO_ENABLED=0"}, "-o", helperBin, "./cmd/astrid-sandbox"); err != nil {
		return 0, err
	}
	helper, err := host.VerifyHelper(helperBin)
	if err != nil {
		return 0, err
	}
	support := sandbox.Probe(helperBin)
	policy := sandbox.Required
	if err := support.CheckPolicy(policy); err != nil {
		policy = sandbox.BestEffort
		fmt.Fprintf(os.Stderr, "tests: sandbox policy best-effort: %v\n", err)
	}
	testSandbox = sandbox.New(helperBin, policy, support).WithHelperCheck(helper.Recheck)
	for name, src := range builtCapsules {
		dst := filepath.Join(dir, "capsules", name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return 0, err
		}
		toml, err := os.ReadFile(filepath.Join(repoRoot, src, "Capsule.toml"))
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(dst, "Capsule.toml"), toml, 0o644); err != nil {
			return 0, err
		}
		wasmEnv := []string{"GOOS=wasip1", "GOARCH=wasm"}
		if err := goBuild(wasmEnv, "-buildmode=c-shared", "-o", filepath.Join(dst, name+".wasm"), "./"+src); err != nil {
			return 0, err
		}
		capsules[name] = dst
	}
	return m.Run(), nil
}

func goBuild(env []string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-buildvcs=false"), env...)
	cmd.Stdout, cmd.Stderr = &buildLogs, &buildLogs
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// cliResult is what one run of the astrid-host binary produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs astrid-host with args, with a state directory private to the test.
func runCLI(t *testing.T, stateDir string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostBin, args...)
	cmd.Env = append(os.Environ(), "ASTRID_STATE_DIR="+stateDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		t.Fatalf("run astrid-host %v: %v", args, err)
	}
	return res
}

// newHost starts an in-process host on the built shim; it is shut down when the test ends.
// configure, if given, adjusts the host's configuration first.
func newHost(t *testing.T, configure ...func(*host.Config)) *host.Host {
	t.Helper()
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testWriter{t: t}
	t.Cleanup(logs.close) // runs last: after the host's shutdown has logged
	state := t.TempDir()
	cfg := host.Config{
		Shim:      shim,
		StateDir:  state,
		Workspace: t.TempDir(),
		Sandbox:   testSandbox,
		Logger:    hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: logs, Level: hclog.Debug}),
	}
	for _, f := range configure {
		f(&cfg)
	}
	if cfg.StateDir == state {
		// Compiled modules are shared by the tests' hosts, as by one host across restarts: a
		// capsule is compiled once per run rather than once per test (compiling is most of a
		// test's CPU time). A test about the cache itself gives its host a state dir of its own.
		if err := os.Symlink(sharedModules, filepath.Join(state, "modules")); err != nil {
			t.Fatal(err)
		}
	}
	h, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

// loadCapsule loads a built capsule by name (or a capsule directory) into h.
func loadCapsule(t *testing.T, h *host.Host, name string, opts ...host.LoadOptions) (*host.Instance, host.LoadResult) {
	t.Helper()
	dir, ok := capsules[name]
	if !ok {
		dir = name
	}
	m, _, err := manifest.Load(dir)
	if err != nil {
		t.Fatalf("manifest of %s: %v", name, err)
	}
	var o host.LoadOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	inst, res, err := h.Load(context.Background(), m, o)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return inst, res
}

// watModule compiles WAT to a .wasm file in a fresh directory and returns its path.
func watModule(t testing.TB, name, wat string) string {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(wat)
	if err != nil {
		t.Fatalf("wat2wasm %s: %v", name, err)
	}
	path := filepath.Join(t.TempDir(), name+".wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// processAlive reports whether pid is still a live (non-zombie) process.
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st := processState(pid)
	return st != 0 && st != 'Z'
}

// processState is the state letter of pid in /proc/PID/stat (R, S, T, Z, ...), or 0 if pid is gone.
func processState(pid int) byte {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// testWriter sends log output to t.Log so it shows with the failing test only; after the test it
// drops lines (t.Log panics once a test has finished).
type testWriter struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// capsuleEdited copies the built capsule name into a fresh directory named newName, with its
// Capsule.toml passed through edit, and returns the directory.
func capsuleEdited(t testing.TB, name, newName string, edit func(string) string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), newName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(capsules[name])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(capsules[name], e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "Capsule.toml" {
			s := strings.Replace(string(data), fmt.Sprintf("name = %q", name), fmt.Sprintf("name = %q", newName), 1)
			data = []byte(edit(s))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// capsuleVariant copies a built capsule into a fresh directory, appending extra to its
// Capsule.toml (e.g. a [limits] table), and returns the directory.
func capsuleVariant(t testing.TB, name, extra string) string {
	t.Helper()
	return capsuleEdited(t, name, name, func(toml string) string { return toml + "\n" + extra })
}
