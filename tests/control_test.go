package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
)

// tailProcess is a running `astrid-host tail`.
type tailProcess struct {
	cmd    *exec.Cmd
	lines  chan string // stdout lines; closed at EOF
	stderr *logBuffer
	done   chan struct{}
}

// startTail starts `astrid-host tail --state state patterns...` and returns once it follows
// them (it says so on stderr once the host has subscribed).
func startTail(t *testing.T, state string, patterns ...string) *tailProcess {
	t.Helper()
	tp := &tailProcess{cmd: exec.Command(hostBin, append([]string{"tail", "--state", state}, patterns...)...),
		lines: make(chan string, 1024), stderr: &logBuffer{}, done: make(chan struct{})}
	tp.cmd.Stderr = tp.stderr
	stdout, err := tp.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tp.done)
		defer close(tp.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 2<<20)
		for sc.Scan() {
			tp.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		tp.cmd.Process.Kill()
		<-tp.done
		tp.cmd.Wait()
	})
	waitFor(t, eventTimeout, "tail to follow", func() bool {
		return strings.Contains(tp.stderr.String(), "astrid-host tail: following")
	})
	return tp
}

// await returns the first line that contains each of want.
func (tp *tailProcess) await(t *testing.T, want ...string) string {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case line, ok := <-tp.lines:
			if !ok {
				t.Fatalf("tail ended without %s; stderr:\n%s", want, tp.stderr.String())
			}
			if containsAll(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("tail printed no %s within %s; stderr:\n%s", want, eventTimeout, tp.stderr.String())
		}
	}
}

// pidOf is the shim pid run last logged for the capsule name.
func (r *runningHost) pidOf(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pids[name]
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// statusRows runs `astrid-host status` and returns its table's rows by capsule.
func statusRows(t *testing.T, state string) map[string][]string {
	t.Helper()
	res := runCLI(t, state, "status", "--state", state)
	if res.code != 0 {
		t.Fatalf("status: exit %d\n%s", res.code, res.stderr)
	}
	rows := map[string][]string{}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "CAPSULE VERSION STATE RESTARTS PID SOURCE LAST FAILURE" {
		t.Fatalf("status header %q", lines[0])
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f[1:]
	}
	return rows
}

// TestControlCommands: each command of the control socket against a running `astrid-host run`:
// status (table and --json), call --running (output, input, a guest's failure, bad names),
// publish and tail (and their refusals of bad topics and JSON), unload and load; then, once
// the host has stopped, the tail has ended saying so and every command says no host runs.
func TestControlCommands(t *testing.T) {
	state := t.TempDir()
	run := startRun(t, "--state", state, capsules["hello"], capsules["faulty"])
	tail := startTail(t, state, "test.v1.*", host.TopicCapsulePrefix+"*")

	t.Run("status", func(t *testing.T) {
		rows := statusRows(t, state)
		for _, name := range []string{"hello", "faulty"} {
			r := rows[name]
			if len(r) < 6 || r[0] != "0.1.0" || r[1] != "ready" || r[2] != "0" || r[3] != fmt.Sprint(run.pidOf(name)) || r[4] != "development" || r[5] != "-" {
				t.Fatalf("status row of %s: %v (want 0.1.0 ready 0 %d development -)", name, r, run.pidOf(name))
			}
		}
		res := runCLI(t, state, "status", "--state", state, "--json")
		var st host.HostStatus
		if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || res.code != 0 {
			t.Fatalf("status --json: exit %d, %v\n%s%s", res.code, err, res.stdout, res.stderr)
		}
		if st.HostPid != run.cmd.Process.Pid || len(st.Capsules) != 2 {
			t.Fatalf("status --json: %+v", st)
		}
		for _, c := range st.Capsules {
			if c.State != "ready" || c.Version != "0.1.0" || c.Source != "development" || c.Dir != capsules[c.Capsule] || c.Pid != run.pidOf(c.Capsule) {
				t.Fatalf("status --json capsule %+v", c)
			}
		}
	})

	t.Run("call --running", func(t *testing.T) {
		big := strings.Repeat("x", host.MaxOperatorPayloadBytes) // two frames of output
		dir := t.TempDir()
		bigFile, tooBig := filepath.Join(dir, "input"), filepath.Join(dir, "too-big")
		os.WriteFile(bigFile, []byte(big), 0o600)
		os.WriteFile(tooBig, []byte(big+"y"), 0o600)
		tests := []struct {
			name   string
			args   []string
			code   int
			stdout string
			stderr string
		}{
			{name: "output", args: []string{"hello", "greet", "world"}, stdout: "Hello, world!"},
			{name: "--input", args: []string{"faulty", "echo", "--input", "in"}, stdout: "in"},
			{name: "the largest input, output in pieces", args: []string{"faulty", "echo", "--input-file", bigFile}, stdout: big},
			{name: "guest failure", args: []string{"faulty", "fail", "it\x1b[2Jbroke"}, code: 1, stderr: `error: it\x1b[2Jbroke`},
			{name: "no such export", args: []string{"hello", "nope"}, code: 1, stderr: `capsule hello has no export "nope"; it exports: count_vowels, greet`},
			{name: "no such capsule", args: []string{"nothere", "greet"}, code: 1, stderr: `no capsule "nothere" is loaded in this host; loaded: hello, faulty`},
			{name: "input too large", args: []string{"faulty", "echo", "--input-file", tooBig}, code: 2, stderr: "input of 524289 bytes: a call into a running capsule takes at most 524288 bytes (512 KiB)"},
			{name: "a flag of call's own host", args: []string{"--config", "a=b", "hello", "greet"}, code: 2, stderr: "--config configures a host of call's own"},
			{name: "input twice", args: []string{"hello", "greet", "x", "--input", "y"}, code: 2, stderr: "give the input once"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res := runCLI(t, state, append([]string{"call", "--running", "--state", state}, tc.args...)...)
				if res.code != tc.code || res.stdout != tc.stdout || !strings.Contains(res.stderr, tc.stderr) {
					t.Fatalf("exit %d, stdout %.80q, stderr %s; want exit %d, stdout %.80q, stderr with %q", res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
				}
			})
		}
	})

	t.Run("publish and tail", func(t *testing.T) {
		res := runCLI(t, state, "publish", "--state", state, "test.v1.hi", `{"n":1,"s":"\u001b[31m"}`)
		if res.code != 0 || !strings.HasPrefix(res.stdout, "published to test.v1.hi (seq ") {
			t.Fatalf("publish: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		line := tail.await(t, `"topic":"test.v1.hi"`)
		var m struct {
			Payload   json.RawMessage `json:"payload"`
			SourceID  string          `json:"source_id"`
			Principal string          `json:"principal"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || string(m.Payload) != `{"type":"custom","data":{"n":1,"s":"\u001b[31m"}}` ||
			m.SourceID != "00000000-0000-0000-0000-000000000000" || m.Principal != "default" {
			t.Fatalf("tailed line %s: %v", line, err)
		}
		if strings.Contains(line, "\x1b") {
			t.Fatalf("tail printed a raw escape: %q", line)
		}
		refusals := []struct{ name, topic, payload, want string }{
			{"empty segment", "test..x", `{}`, `topic "test..x" contains empty segments`},
			{"not JSON", "test.v1.x", `{"a":`, `IPC payload is not valid JSON (want one JSON value`},
			{"beyond float64", "test.v1.x", `1e400`, `IPC payload is not valid JSON`},
			{"too long", strings.Repeat("a", 257), `{}`, "is 257 bytes long; topics are limited to 256 bytes"},
		}
		for _, r := range refusals {
			t.Run(r.name, func(t *testing.T) {
				if res := runCLI(t, state, "publish", "--state", state, r.topic, r.payload); res.code != 2 || !strings.Contains(res.stderr, r.want) {
					t.Fatalf("exit %d\n%s", res.code, res.stderr)
				}
			})
		}
		// The host applies the same rule to a request that did not come through the command (an
		// argument cannot be as large as the limit: the kernel bounds one at 128 KiB).
		for _, r := range []struct{ payload, want string }{
			{`{"a":`, "IPC payload is not valid JSON"},
			{`"` + strings.Repeat("x", host.MaxOperatorPayloadBytes) + `"`, "payload of 524290 bytes: the operator publishes at most 524288 bytes (512 KiB)"},
		} {
			err := control.Call(context.Background(), state, host.ControlPublish, host.PublishParams{Topic: "test.v1.x", Payload: r.payload}, nil)
			var re *control.RemoteError
			if !errors.As(err, &re) || !strings.Contains(re.Msg, r.want) {
				t.Fatalf("a bad payload sent to the socket directly: %v, want %q", err, r.want)
			}
		}
		if res := runCLI(t, state, "tail", "--state", state, "a..b"); res.code != 2 || !strings.Contains(res.stderr, `pattern "a..b" contains empty segments`) {
			t.Fatalf("tail of a bad pattern: exit %d\n%s", res.code, res.stderr)
		}
	})

	t.Run("tails are bounded", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		started := make(chan struct{}, control.MaxStreams)
		for range control.MaxStreams - 1 { // the tail process holds one
			wg.Add(1)
			go func() {
				defer wg.Done()
				control.CallStream(ctx, state, host.ControlTail, host.TailParams{Patterns: []string{"x.y"}}, func(r json.RawMessage) error {
					if r == nil {
						started <- struct{}{}
					}
					return nil
				})
			}()
		}
		for range control.MaxStreams - 1 {
			<-started
		}
		res := runCLI(t, state, "tail", "--state", state, "x.y")
		if res.code != 1 || !strings.Contains(res.stderr, fmt.Sprintf("busy: %d streams (tail, call --running) are open, the most at once", control.MaxStreams)) {
			t.Fatalf("tail %d: exit %d\n%s", control.MaxStreams+1, res.code, res.stderr)
		}
		if res := runCLI(t, state, "publish", "--state", state, "test.v1.busy", "1"); res.code != 0 {
			t.Fatalf("publish while the tails are open: exit %d\n%s", res.code, res.stderr)
		}
		cancel()
		wg.Wait()
	})

	t.Run("unload and load", func(t *testing.T) {
		if res := runCLI(t, state, "unload", "--state", state, "hello"); res.code != 0 || res.stdout != "unloaded hello\n" {
			t.Fatalf("unload: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		tail.await(t, `"topic":"astrid.v1.capsule.stopped"`, `"capsule_id":"hello"`)
		if _, ok := statusRows(t, state)["hello"]; ok || processAlive(run.pidOf("hello")) {
			t.Fatalf("hello after unload: status %v, shim alive %v", statusRows(t, state), processAlive(run.pidOf("hello")))
		}
		if res := runCLI(t, state, "unload", "--state", state, "hello"); res.code != 1 || !strings.Contains(res.stderr, `no capsule "hello" is loaded in this host; loaded: faulty`) {
			t.Fatalf("unload twice: exit %d\n%s", res.code, res.stderr)
		}
		if res := runCLI(t, state, "load", "--state", state, capsules["hello"]); res.code != 0 || res.stdout != "loaded hello from "+capsules["hello"]+": ready\n" {
			t.Fatalf("load: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		if r := statusRows(t, state)["hello"]; len(r) < 2 || r[1] != "ready" {
			t.Fatalf("hello after load: %v", r)
		}
		if res := runCLI(t, state, "call", "--running", "--state", state, "hello", "greet", "again"); res.code != 0 || res.stdout != "Hello, again!" {
			t.Fatalf("call after load: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		if res := runCLI(t, state, "load", "--state", state, capsules["hello"]); res.code != 1 || !strings.Contains(res.stderr, "a capsule named hello is loaded already; unload it first") {
			t.Fatalf("load twice: exit %d\n%s", res.code, res.stderr)
		}
		empty := t.TempDir()
		if res := runCLI(t, state, "load", "--state", state, empty); res.code != 1 || !strings.Contains(res.stderr, "load: capsule path "+empty+" has no Capsule.toml") {
			t.Fatalf("load of a directory without capsules: exit %d\n%s", res.code, res.stderr)
		}
	})

	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t, runShutdownBound); err != nil {
		t.Fatal(err)
	}
	// The tail printed the capsules' last events, then ended, saying why.
	tail.await(t, `"topic":"astrid.v1.capsule.stopped"`)
	select {
	case <-tail.done:
	case <-time.After(eventTimeout):
		t.Fatal("tail still runs after its host stopped")
	}
	if err := tail.cmd.Wait(); err != nil || !strings.Contains(tail.stderr.String(), "the host is shutting down; the tail ends") {
		t.Fatalf("tail after the host stopped: %v\n%s", err, tail.stderr.String())
	}
	for _, args := range [][]string{
		{"status"}, {"publish", "a.b", "1"}, {"tail", "a.b"}, {"call", "--running", "hello", "greet"},
		{"load", capsules["hello"]}, {"unload", "hello"},
	} {
		res := runCLI(t, state, append(args, "--state", state)...)
		if res.code != 1 || !strings.Contains(res.stderr, "no astrid-host run is running with state directory "+state) {
			t.Errorf("%v with no host: exit %d\n%s", args, res.code, res.stderr)
		}
	}
}

// TestControlSlowTail: a tail client that reads nothing cannot hold up the bus: every publish
// returns at once while it does not read, its queue in the host drops the oldest messages, and
// when it reads again it gets what the queue kept and the exact count of what it dropped.
func TestControlSlowTail(t *testing.T) {
	state := t.TempDir()
	startRun(t, "--state", state, capsules["hello"])
	conn, err := net.Dial("unix", control.SocketPath(state))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(eventTimeout))
	if err := control.WriteFrame(conn, control.Request{Method: host.ControlTail, Params: json.RawMessage(`{"patterns":["slow.v1.x"]}`)}); err != nil {
		t.Fatal(err)
	}
	var resp control.Response
	if err := control.ReadFrame(conn, &resp); err != nil || !resp.OK {
		t.Fatalf("tail: %+v, %v", resp, err)
	}
	// 40 messages of 400 KiB: twice the queue's 8 MiB, far more than the socket buffers hold.
	const n = 40
	payload := `"` + strings.Repeat("x", 400<<10) + `"`
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), control.IOTimeout)
		err := control.Call(ctx, state, host.ControlPublish, host.PublishParams{Topic: "slow.v1.x", Payload: payload}, nil)
		cancel()
		if err != nil {
			t.Fatalf("publish %d while the tail reads nothing: %v", i, err)
		}
	}
	var got, lagged uint64
	for got+lagged < n {
		conn.SetDeadline(time.Now().Add(eventTimeout))
		var fr control.Response
		if err := control.ReadFrame(conn, &fr); err != nil || !fr.OK || fr.End {
			t.Fatalf("after %d messages and %d lagged: %+v, %v", got, lagged, fr, err)
		}
		var f host.TailFrame
		if err := json.Unmarshal(fr.Result, &f); err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Message != nil:
			got++
		case f.Lagged > 0 && f.Pattern == "slow.v1.x":
			lagged += f.Lagged
		default:
			t.Fatalf("unexpected frame %s", fr.Result)
		}
	}
	if got+lagged != n || lagged == 0 {
		t.Fatalf("received %d and lagged %d of %d published; want them to add up, with some lagged", got, lagged, n)
	}
	t.Logf("received %d, lagged %d", got, lagged)
}

// TestControlOtherUser: a command run as another user is refused by the host of the state
// directory even when the socket's modes would let that user connect (opened up here on
// purpose, so that only the peer checks stand in the way): the client refuses a host of another
// user, and the host logs that it refused the client.
func TestControlOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a command as another user (setpriv --reuid)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv to run a command as another user")
	}
	pub := t.TempDir()
	os.Chmod(pub, 0o755)
	os.Chmod(filepath.Dir(pub), 0o755)
	bin := filepath.Join(pub, "astrid-host")
	data, err := os.ReadFile(hostBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(pub, "state")
	os.Mkdir(state, 0o755)
	run := startRun(t, "--state", state, capsules["hello"])
	os.Chmod(filepath.Join(state, control.DirName), 0o755)
	os.Chmod(control.SocketPath(state), 0o666)
	for _, args := range [][]string{{"status"}, {"publish", "test.v1.x", "1"}, {"unload", "hello"}} {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, append(args, "--state", state)...)...)
		cmd.Dir = pub
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "served by uid 0, not by this user (uid 65534); refusing to talk to it") {
			t.Fatalf("%v as nobody: %v\n%s", args, err, out)
		}
	}
	waitFor(t, eventTimeout, "the host to log the refusal", func() bool {
		return strings.Contains(run.logText(), "control socket: connection refused: another user: peer_uid=65534 host_uid=0")
	})
	if r := statusRows(t, state)["hello"]; len(r) < 2 || r[1] != "ready" {
		t.Fatalf("hello after nobody's unload: %v", r)
	}
}

// TestControlUnloadPendingRestart: unloading a crashed capsule whose restart is pending drops
// the restart: the capsule stays unloaded. (Before, the restart put it back.)
func TestControlUnloadPendingRestart(t *testing.T) {
	state := t.TempDir()
	const backoff = 2 * time.Second
	faulty := capsuleVariant(t, "faulty", fmt.Sprintf("\n[restart]\nbackoff = %q\n", backoff))
	run := startRun(t, "--state", state, faulty)
	tail := startTail(t, state, host.TopicCapsulePrefix+"*")
	if err := syscall.Kill(run.pidOf("faulty"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tail.await(t, `"topic":"astrid.v1.capsule.crashed"`)
	if res := runCLI(t, state, "unload", "--state", state, "faulty"); res.code != 0 {
		t.Fatalf("unload: exit %d\n%s", res.code, res.stderr)
	}
	// The restart would load a new instance once the backoff (+10% jitter) is over: nothing may
	// load within twice that. Proving an absence takes this bounded wait.
	deadline := time.After(2 * backoff)
	for {
		select {
		case line := <-tail.lines:
			if strings.Contains(line, `"topic":"astrid.v1.capsule.loading"`) || strings.Contains(line, `"topic":"astrid.v1.capsule.restarted"`) {
				t.Fatalf("the unloaded capsule was restarted: %s\nlog:\n%s", line, run.logText())
			}
			continue
		case <-deadline:
		}
		break
	}
	if rows := statusRows(t, state); len(rows) != 0 {
		t.Fatalf("status after unloading a crashed capsule: %v", rows)
	}
}
