package process

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSpawn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.Mkdir(filepath.Join(e.workspace, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A file in the host's tmp that a private tmp does not show.
	hostTmp, err := os.CreateTemp("", "astrid-process-test-host-*")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp.Close()
	hostTmpFile := hostTmp.Name()
	t.Cleanup(func() { os.Remove(hostTmpFile) })
	bigStdin := strings.Repeat("0123456789abcdef", 3<<20/16) // more than pipes hold: fed while read
	tests := []struct {
		name string
		req  SpawnRequest
		want SpawnResult
	}{
		{"output and exit code", SpawnRequest{Cmd: "sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}},
			SpawnResult{Stdout: "out\n", Stderr: "err\n", ExitCode: 3}},
		{"args are not split", SpawnRequest{Cmd: "echo", Args: []string{"a  b", "c"}},
			SpawnResult{Stdout: "a  b c\n"}},
		{"killed by a signal", SpawnRequest{Cmd: "sh", Args: []string{"-c", "kill -TERM $$"}},
			SpawnResult{ExitCode: -1, Signal: intp(15)}},
		{"stdin is written then closed", SpawnRequest{Cmd: "cat", Stdin: strp("hello\nworld")},
			SpawnResult{Stdout: "hello\nworld"}},
		{"big stdin", SpawnRequest{Cmd: "cat", Stdin: &bigStdin}, SpawnResult{Stdout: bigStdin}},
		{"no stdin reads EOF", SpawnRequest{Cmd: "cat"}, SpawnResult{}},
		{"no stdin is the null device, not the host's", SpawnRequest{Cmd: "sh", Args: []string{"-c", "readlink /proc/self/fd/0"}},
			SpawnResult{Stdout: "/dev/null\n"}},
		{"invalid UTF-8 is replaced", SpawnRequest{Cmd: "sh", Args: []string{"-c", `printf 'a\377b\342\202c'`}},
			SpawnResult{Stdout: "a\uFFFDb\uFFFDc"}},
		{"default cwd is the workspace", SpawnRequest{Cmd: "pwd"}, SpawnResult{Stdout: realPath(t, e.workspace) + "\n"}},
		{"cwd", SpawnRequest{Cmd: "pwd", Cwd: "sub"}, SpawnResult{Stdout: realPath(t, e.workspace) + "/sub\n"}},
		{"private tmp", SpawnRequest{Cmd: "sh", Args: []string{"-c", `t="${TMPDIR:-/tmp}"; test ! -e "$t/` + filepath.Base(hostTmpFile) +
			`" && echo private > "$t/probe" && cat "$t/probe"`}}, SpawnResult{Stdout: "private\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "private tmp" && e.sandbox.Policy().String() == "off" {
				t.Skip("policy off gives no private tmp: /tmp is the host's")
			}
			got, err := e.m.Spawn(context.Background(), alice, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Stdout != tt.want.Stdout || got.Stderr != tt.want.Stderr || got.ExitCode != tt.want.ExitCode ||
				!sameInt(got.Signal, tt.want.Signal) || got.Truncated || got.TimedOut {
				t.Errorf("got stdout %.80q stderr %q exit %d signal %v truncated %v timed out %v, want stdout %.80q stderr %q exit %d signal %v",
					got.Stdout, got.Stderr, got.ExitCode, deref(got.Signal), got.Truncated, got.TimedOut,
					tt.want.Stdout, tt.want.Stderr, tt.want.ExitCode, deref(tt.want.Signal))
			}
		})
	}
}

// TestSpawnTruncation: each stream of plain text (one JSON byte per byte) keeps exactly its first
// MaxCaptureBytes, says so, and the child is drained to its end (it would block on a full pipe
// otherwise).
func TestSpawnTruncation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const line = "0123456789abcdef "
	full := strings.Repeat(line, MaxCaptureBytes/len(line)+1)
	for _, tt := range []struct {
		name      string
		size      int
		truncated bool
	}{
		{"exactly the cap", MaxCaptureBytes, false},
		{"more than the cap", MaxCaptureBytes + 3<<20, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gen := "yes 0123456789abcdef | tr '\\n' ' ' | head -c " + itoa(tt.size)
			script := gen + " >&2 & " + gen + "; wait"
			res := e.sh(t, script)
			if res.Truncated != tt.truncated || res.ExitCode != 0 {
				t.Fatalf("truncated %v exit %d, want truncated %v exit 0", res.Truncated, res.ExitCode, tt.truncated)
			}
			for name, got := range map[string]string{"stdout": res.Stdout, "stderr": res.Stderr} {
				if len(got) != MaxCaptureBytes || got != full[:MaxCaptureBytes] {
					t.Errorf("%s: %d bytes, want the first %d bytes of the output", name, len(got), MaxCaptureBytes)
				}
			}
		})
	}
}

// TestSpawnNULs: a child writing 10 MiB of NUL bytes to each stream, each byte six in JSON, gets
// the start of its output back, cut so the whole result stays within 2×MaxCaptureBytes (and
// so within what the transport carries), rather than an error and nothing.
func TestSpawnNULs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `head -c 10485760 /dev/zero >&2 & head -c 10485760 /dev/zero; wait`
	req, err := encode(SpawnRequest{Cmd: "sh", Args: []string{"-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	result, err := e.m.Handle(context.Background(), Spawn, alice, req)
	if err != nil {
		t.Fatal(err)
	}
	if limit := 2*MaxCaptureBytes + 256; len(result) > limit {
		t.Fatalf("the result is %d bytes, more than %d", len(result), limit)
	}
	var res SpawnResult
	if err := json.Unmarshal(result, &res); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("\x00", MaxCaptureBytes/6)
	if !res.Truncated || res.ExitCode != 0 || res.Stdout != want || res.Stderr != want {
		t.Fatalf("truncated %v exit %d, stdout %d bytes, stderr %d bytes; want truncated, exit 0 and the first %d NULs of each",
			res.Truncated, res.ExitCode, len(res.Stdout), len(res.Stderr), len(want))
	}
}

// TestSpawnTimeout: timeout_ms kills the whole tree and says so.
func TestSpawnTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	child, grandchild := marker(), marker()
	res, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "sh",
		Args: []string{"-c", "sleep " + grandchild + " & echo started; exec sleep " + child}, TimeoutMS: u64p(200)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != -1 || !sameInt(res.Signal, intp(9)) || res.Stdout != "started\n" {
		t.Fatalf("got %+v, want timed out, killed by signal 9, stdout %q", res, "started\n")
	}
	noSurvivors(t, child, grandchild)

	quick, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "true", TimeoutMS: u64p(MaxTimeoutMS)})
	if err != nil || quick.TimedOut || quick.ExitCode != 0 {
		t.Fatalf("a process that ends in time: %+v, %v", quick, err)
	}
	for _, ms := range []uint64{0, MaxTimeoutMS + 1} {
		_, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "true", TimeoutMS: u64p(ms)})
		wantErrContaining(t, err, "invalid timeout_ms")
	}
}

// TestSpawnKillsLeftovers: what the program leaves running is killed when it exits, and the
// spawn does not wait for it.
func TestSpawnKillsLeftovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	left := marker()
	res := e.sh(t, "sleep "+left+" & echo started")
	if res.Stdout != "started\n" || res.ExitCode != 0 {
		t.Fatalf("got %+v", res)
	}
	eventually(t, "the leftover sleep is gone", func() bool { return len(pidsWith(left)) == 0 })
}

// TestSpawnCancelled: cancelling the context (the capsule unloading) kills the tree and gives
// upstream's cancelled result.
func TestSpawnCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := marker()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		waitRunning(t, m)
		cancel()
	}()
	res, err := e.m.Spawn(ctx, alice, SpawnRequest{Cmd: "sleep", Args: []string{m}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (SpawnResult{Stderr: "process cancelled", ExitCode: -1}); res != want {
		t.Fatalf("got %+v, want %+v", res, want)
	}
	noSurvivors(t, m)
}

func sameInt(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func itoa(i int) string { return strconv.Itoa(i) }

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSpawnEscapedPipeHolder: a process that left the tree (setsid, without a pid namespace)
// and keeps stdout open does not hold the spawn beyond DrainGrace.
func TestSpawnEscapedPipeHolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if e.hasPIDNamespace(t) {
		t.Skip("the pid namespace kills a setsid grandchild with the tree: nothing escapes")
	}
	escaped := marker()
	t.Cleanup(func() {
		for _, pid := range pidsWith(escaped) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	res := e.sh(t, "setsid sleep "+escaped+" & echo hi")
	if res.Stdout != "hi\n" || res.ExitCode != 0 {
		t.Fatalf("got %+v", res)
	}
	if took := time.Since(start); took > DrainGrace+10*time.Second {
		t.Fatalf("the spawn took %v with an escaped process holding its stdout", took)
	}
}

// TestMisconfigured: a Manager without a sandbox or a workspace refuses to spawn, clearly.
func TestMisconfigured(t *testing.T) {
	t.Parallel()
	noSandbox := newEnv(t, func(c *Config) { c.Sandbox = nil })
	_, err := noSandbox.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "true"})
	wantErr(t, err, "failed to spawn command: no sandbox is configured")
	noWorkspace := newEnv(t, func(c *Config) { c.Workspace = "" })
	_, err = noWorkspace.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "true"})
	wantErr(t, err, "failed to spawn background process: the capsule has no workspace")
}
