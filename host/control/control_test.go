package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary a raw client of a control socket (see TestMain): it connects
// to the socket named by the variable, sends one request and prints the response frame's JSON.
const helperEnv = "ASTRID_CONTROL_TEST_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(rawClient(path))
	}
	goleak.VerifyTestMain(m)
}

func rawClient(path string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(IOTimeout))
	if err := WriteFrame(c, Request{Method: "echo", Params: json.RawMessage(`"hi"`)}); err != nil {
		fmt.Println("write:", err)
	}
	var resp Response
	if err := ReadFrame(c, &resp); err != nil {
		fmt.Println("read:", err)
		return 1
	}
	b, _ := json.Marshal(resp)
	fmt.Println(string(b))
	return 0
}

func echoHandlers() Handlers {
	return Handlers{
		"echo": func(_ context.Context, p json.RawMessage) (any, error) { return p, nil },
		"fail": func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("it failed") },
		"huge": func(context.Context, json.RawMessage) (any, error) { return strings.Repeat("x", MaxFrameBytes), nil },
	}
}

func listen(t *testing.T, state string) *Server {
	t.Helper()
	s, err := Listen(state, echoHandlers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCall(t *testing.T) {
	state := t.TempDir()
	s := listen(t, state)
	for _, p := range []string{s.Path(), filepath.Dir(s.Path())} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	tests := []struct {
		name, method string
		params       any
		want         string
		err          string
	}{
		{name: "result", method: "echo", params: map[string]int{"n": 1}, want: `{"n":1}`},
		{name: "method error", method: "fail", err: "it failed"},
		{name: "unknown method", method: "nope", err: `unknown method "nope"; this host serves: echo, fail, huge`},
		{name: "result too large", method: "huge", err: "huge: the result is 1048578 bytes of JSON, more than one response holds (1048576)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got json.RawMessage
			err := Call(context.Background(), state, tc.method, tc.params, &got)
			var re *RemoteError
			switch {
			case tc.err != "" && (!errors.As(err, &re) || re.Msg != tc.err):
				t.Fatalf("error = %v, want %q", err, tc.err)
			case tc.err == "" && (err != nil || string(got) != tc.want):
				t.Fatalf("result = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestNoHost(t *testing.T) {
	state := t.TempDir()
	err := Call(context.Background(), state, "echo", nil, nil)
	var nh *NoHostError
	if !errors.As(err, &nh) || !strings.Contains(err.Error(), "no astrid-host run is running with state directory "+state) {
		t.Fatalf("no socket: %v", err)
	}
	// A socket left behind by a host that died: nothing answers, and the next host replaces it.
	s, err := Listen(state, echoHandlers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.ln.SetUnlinkOnClose(false)
	s.Close()
	if _, err := os.Lstat(SocketPath(state)); err != nil {
		t.Fatalf("the stale socket should remain: %v", err)
	}
	if err := Call(context.Background(), state, "echo", nil, nil); !errors.As(err, &nh) {
		t.Fatalf("stale socket: %v", err)
	}
	listen(t, state)
	if err := Call(context.Background(), state, "echo", nil, nil); err != nil {
		t.Fatalf("after replacing the stale socket: %v", err)
	}
}

func TestSecondServerRefused(t *testing.T) {
	state := t.TempDir()
	listen(t, state)
	if _, err := Listen(state, echoHandlers(), nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	if err := Call(context.Background(), state, "echo", nil, nil); err != nil {
		t.Fatalf("the first server must still serve: %v", err)
	}
}

func TestDirectoryChecks(t *testing.T) {
	t.Run("made private", func(t *testing.T) {
		state := t.TempDir()
		if err := os.Mkdir(filepath.Join(state, DirName), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(state, DirName), 0o777)
		listen(t, state)
		fi, _ := os.Stat(filepath.Join(state, DirName))
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("run directory mode %v, want 0700", fi.Mode().Perm())
		}
	})
	t.Run("symlink refused", func(t *testing.T) {
		state, elsewhere := t.TempDir(), t.TempDir()
		if err := os.Symlink(elsewhere, filepath.Join(state, DirName)); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(state, echoHandlers(), nil); err == nil || !strings.Contains(err.Error(), "is not a directory") {
			t.Fatalf("Listen through a symlink: %v", err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		state := t.TempDir()
		os.Mkdir(filepath.Join(state, DirName), 0o700)
		os.WriteFile(SocketPath(state), nil, 0o600)
		if _, err := Listen(state, echoHandlers(), nil); err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Fatalf("Listen over a file: %v", err)
		}
	})
}

// TestBadFrames: a frame over the limit is refused before it is read, garbage is answered with
// an error, and a connection that sends nothing does not hold the server's Close.
func TestBadFrames(t *testing.T) {
	state := t.TempDir()
	s := listen(t, state)
	send := func(t *testing.T, raw []byte) Response {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(IOTimeout))
		c.Write(raw)
		var resp Response
		if err := ReadFrame(c, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	t.Run("too large", func(t *testing.T) {
		hdr := binary.BigEndian.AppendUint32(nil, MaxFrameBytes+1)
		if r := send(t, hdr); r.OK || !strings.Contains(r.Error, "frame larger than 1048576 bytes") {
			t.Fatalf("response %+v", r)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		raw := append(binary.BigEndian.AppendUint32(nil, 3), "{{{"...)
		if r := send(t, raw); r.OK || !strings.HasPrefix(r.Error, "bad request: ") {
			t.Fatalf("response %+v", r)
		}
	})
	if err := WriteFrame(io.Discard, strings.Repeat("x", MaxFrameBytes)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame over the limit: %v", err)
	}
	// A silent connection: Close ends it at once.
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Call(context.Background(), state, "echo", nil, nil); err != nil {
		t.Fatal(err) // the silent one holds no one else up
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(IOTimeout / 2):
		t.Fatal("Close waited for a silent connection")
	}
}

// TestOtherUserRefused: a client of another user is refused by its peer credentials, even when
// the socket's mode would let it connect. It runs this test binary as nobody (setpriv).
func TestOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user (setpriv --reuid)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv to run a client as another user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Everything the other user needs must be reachable by it: the binary, the directories, and
	// the socket (opened up here on purpose, so that only the peer check stands in the way).
	pub := t.TempDir()
	os.Chmod(pub, 0o755)
	os.Chmod(filepath.Dir(pub), 0o755) // t.TempDir's parent is private too
	bin := filepath.Join(pub, "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(pub, "state")
	os.Mkdir(state, 0o755)
	s := listen(t, state)
	s.allowDescendants.Store(true) // the clients are this test's children
	os.Chmod(filepath.Dir(s.Path()), 0o755)
	os.Chmod(s.Path(), 0o666)

	run := func(asNobody bool) string {
		cmd := exec.Command(bin)
		if asNobody {
			cmd = exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin)
		}
		cmd.Dir = pub
		cmd.Env = append(os.Environ(), helperEnv+"="+s.Path())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("client (nobody=%v): %v\n%s", asNobody, err, out.String())
		}
		return strings.TrimSpace(out.String())
	}
	if got := run(false); got != `{"ok":true,"result":"hi"}` {
		t.Fatalf("the host's own user: %s", got)
	}
	if got := run(true); !strings.Contains(got, `"ok":false`) || !strings.Contains(got, "refused: the host runs as uid 0 and serves no other user (you are uid 65534)") {
		t.Fatalf("nobody: %s", got)
	}
}

// TestDescendantRefused: a process the serving process started (as a capsule's shim is the
// host's), directly or through another, is refused, whatever its user; the serving process
// itself is served (TestCall). A process of the same user that the host did not start is
// served: the tests/ package runs the commands so, against a real astrid-host run.
func TestDescendantRefused(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := listen(t, t.TempDir())
	tests := []struct {
		name string
		cmd  *exec.Cmd
	}{
		{"child", exec.Command(self)},
		{"grandchild", exec.Command("/bin/sh", "-c", `"$0"; exit $?`, self)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.Env = append(os.Environ(), helperEnv+"="+s.Path())
			out, err := tc.cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("client: %v\n%s", err, out)
			}
			if got := string(out); !strings.Contains(got, `"ok":false`) || !strings.Contains(got, "was started by the host (a capsule's shim or a process a capsule spawned); the control socket serves the operator only") {
				t.Fatalf("a descendant of the server: %s", got)
			}
		})
	}
}
