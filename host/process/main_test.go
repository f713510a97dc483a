package process

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/astrid-go/astrid/sandbox"
)

// The tests run under policy Off unless sandbox_test.go plugs in the real sandbox
// (ASTRID_TEST_SANDBOX): newTestSandbox returns the sandbox every test Manager uses, and
// testHelperMain runs when the test binary is re-executed as the sandbox's helper
// (os.Args[1] == sandbox.HelperArg).
var (
	newTestSandbox = func() *sandbox.Sandbox { return sandbox.New("", sandbox.Off, nil) }
	testHelperMain func()
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg && testHelperMain != nil {
		testHelperMain()
		return
	}
	goleak.VerifyTestMain(m)
}

// testEnv is a Manager over a fresh workspace and tmp root.
type testEnv struct {
	m         *Manager
	workspace string
	tmpRoot   string
	sandbox   *sandbox.Sandbox
}

// allowedCommands are the commands the test capsule may run.
var allowedCommands = []string{"sh", "cat", "echo", "env", "sleep", "true", "pwd", "missing-program", "./tool.sh"}

func newEnv(t *testing.T, mutate ...func(*Config)) *testEnv {
	t.Helper()
	workspace, tmpRoot := t.TempDir(), t.TempDir()
	sb := newTestSandbox()
	cfg := Config{
		CapsuleID:     "test-capsule",
		Instance:      "test-instance",
		Allowed:       allowedCommands,
		Workspace:     workspace,
		MaxBackground: DefaultMaxBackground,
		Sandbox:       sb,
		TmpRoot:       tmpRoot,
		PassEnv:       map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC", "HOME": "/not/passed"},
		Logger:        hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: io.Discard}),
	}
	for _, f := range mutate {
		f(&cfg)
	}
	env := &testEnv{m: New(cfg), workspace: workspace, tmpRoot: tmpRoot, sandbox: sb}
	t.Cleanup(func() {
		if err := env.m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left, _ := os.ReadDir(tmpRoot); len(left) != 0 {
			t.Errorf("private tmp directories left after Close: %v", left)
		}
	})
	return env
}

const alice, bob = "alice", "bob"

// sh runs a shell script synchronously for alice.
func (e *testEnv) sh(t *testing.T, script string) SpawnResult {
	t.Helper()
	res, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "sh", Args: []string{"-c", script}})
	if err != nil {
		t.Fatalf("spawn %q: %v", script, err)
	}
	return res
}

// background starts a process for alice and returns its id.
func (e *testEnv) background(t *testing.T, cmd string, args ...string) uint64 {
	t.Helper()
	res, err := e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: cmd, Args: args})
	if err != nil {
		t.Fatalf("spawn_background %s %q: %v", cmd, args, err)
	}
	return res.ID
}

// hasPIDNamespace reports whether the test sandbox gives processes a pid namespace.
func (e *testEnv) hasPIDNamespace(t *testing.T) bool {
	t.Helper()
	return e.hasLayer(t, sandbox.LayerPIDNS)
}

// hasLayer reports whether the test sandbox gives processes layer l.
func (e *testEnv) hasLayer(t *testing.T, l sandbox.Layer) bool {
	t.Helper()
	id := e.background(t, "true")
	b, err := e.m.lookup(alice, id)
	if err != nil {
		t.Fatal(err)
	}
	has := slices.Contains(b.p.layers, l)
	if _, err := e.m.Kill(alice, id); err != nil {
		t.Fatal(err)
	}
	return has
}

var markerSeq atomic.Int64

// marker returns a sleep duration no other process has on its command line: it identifies the
// processes a test starts in /proc, whatever pid namespace they run in.
func marker() string {
	return fmt.Sprintf("%d.%06d", 3600+markerSeq.Add(1), os.Getpid()%1000000)
}

// pidsWith returns the live processes with an argument equal to s (zombies have none). A shell
// whose script mentions s does not match; the sleep it runs does.
func pidsWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && slices.Contains(strings.Split(string(cmdline), "\x00"), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procState is the state letter of /proc/PID/stat ("" when the process is gone).
func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// eventually polls cond until it holds; it fails the test after 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitRunning returns the process with the argument m, once it runs.
func waitRunning(t *testing.T, m string) int {
	t.Helper()
	var pids []int
	eventually(t, "a process with "+m+" runs", func() bool { pids = pidsWith(m); return len(pids) > 0 })
	return pids[0]
}

// noSurvivors checks that no process with any of the markers is alive.
func noSurvivors(t *testing.T, markers ...string) {
	t.Helper()
	for _, m := range markers {
		if pids := pidsWith(m); len(pids) != 0 {
			t.Errorf("processes with %s survived: %v", m, pids)
		}
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func wantErrContaining(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func intp(i int) *int { return &i }

func u64p(i uint64) *uint64 { return &i }

func strp(s string) *string { return &s }
