package tests

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

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/syssock"
)

// rawVariant copies the raw capsule, adding caps to its [capabilities] and appending extra.
func rawVariant(t testing.TB, caps, extra string) string {
	t.Helper()
	return editedVariant(t, "raw", extra, "[capabilities]", caps)
}

// editedVariant is capsuleVariant(name, extra) with line added under the table header of its
// Capsule.toml.
func editedVariant(t testing.TB, name, extra, header, line string) string {
	t.Helper()
	dir := capsuleVariant(t, name, extra)
	path := filepath.Join(dir, "Capsule.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(header+"\n"), []byte(header+"\n"+line+"\n"), 1)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shortStateDir is a state directory whose socket path fits the kernel's 108 bytes (a test's
// TempDir, named after the test, may not).
func shortStateDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "an")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// netHost starts a host on a short state directory with the raw capsule given net_bind.
func netHost(t *testing.T, extra string) (*host.Host, *host.Instance, string) {
	t.Helper()
	state := shortStateDir(t)
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	inst, _ := loadCapsule(t, h, rawVariant(t, `net_bind = ["unix"]`, extra))
	return h, inst, state
}

// asyncCall runs one raw call in the background; its result arrives on the channel.
type rawResult struct {
	out []byte
	err error
}

func asyncRaw(t *testing.T, inst *host.Instance, fn string, args ...[]byte) <-chan rawResult {
	t.Helper()
	ch := make(chan rawResult, 1)
	go func() {
		out, err := callRaw(t, inst, fn, args...)
		ch <- rawResult{out, err}
	}()
	return ch
}

func waitRaw(t *testing.T, ch <-chan rawResult, what string) rawResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return within 30 s", what)
		return rawResult{}
	}
}

// dial connects a client with the host's token.
func dial(t *testing.T, state string) *net.UnixConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := syssock.Dial(ctx, state, "test-client")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptOne has the guest accept while a client with the right token connects; it returns the
// stream handle and the client's end.
func acceptOne(t *testing.T, inst *host.Instance, state string) (string, *net.UnixConn) {
	t.Helper()
	ch := asyncRaw(t, inst, "astrid_net_accept", nil)
	c := dial(t, state)
	r := waitRaw(t, ch, "accept")
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	return string(r.out), c
}

// TestNetSocketFiles: the socket is 0600 in a 0700 directory, the token 64 hex characters
// 0600, both there only while the host runs.
func TestNetSocketFiles(t *testing.T) {
	h, _, state := netHost(t, "")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{syssock.RunDir(state), os.ModeDir | 0o700}, {syssock.SocketPath(state), os.ModeSocket | 0o600}, {syssock.TokenPath(state), 0o600}} {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
	}
	tok, err := syssock.ReadToken(syssock.TokenPath(state))
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q: %v", tok, err)
	}
	h.Shutdown(context.Background())
	for _, p := range []string{syssock.SocketPath(state), syssock.TokenPath(state)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after shutdown: %v", p, err)
		}
	}
}

// TestNetSecondHostRefused: a second host on the same state directory cannot take the socket
// (the first holds its lock), and a socket left by a dead host is replaced.
func TestNetSecondHostRefused(t *testing.T) {
	_, _, state := netHost(t, "")
	h2 := newHost(t, func(c *host.Config) { c.StateDir = state })
	m := rawVariant(t, `net_bind = ["unix"]`, "")
	_, _, err := h2.Load(context.Background(), mustManifest(t, m), host.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "another astrid-host holds the CLI socket") {
		t.Fatalf("second host's load: %v, want the socket refused", err)
	}

	// A stale socket (its host died: nobody holds the lock) is removed and bound again.
	stale := shortStateDir(t)
	if err := os.MkdirAll(syssock.RunDir(stale), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: syssock.SocketPath(stale), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // the file stays, as after a crash
	h3 := newHost(t, func(c *host.Config) { c.StateDir = stale })
	if _, _, err := h3.Load(context.Background(), mustManifest(t, m), host.LoadOptions{}); err != nil {
		t.Fatalf("load over a stale socket: %v", err)
	}
}

// TestNetExchange: bind, accept with the token, frames both ways, pending, closed, close_stream
// and the connected/disconnect events.
func TestNetExchange(t *testing.T) {
	checkLeaks(t)
	h, inst, state := netHost(t, "")
	w := watchBus(t, h, "client.v1.*")

	out, err := callRaw(t, inst, "astrid_net_bind_unix", []byte("ignored"))
	if err != nil || string(out) != "1" {
		t.Fatalf("bind: %q, %v; want the bare i64 1", out, err)
	}
	handle, c := acceptOne(t, inst, state)
	if handle != "1" {
		t.Fatalf("first stream handle %q, want 1", handle)
	}
	m := w.nextMsg("client.v1.connected")
	if string(m.Payload) != `{"type":"connect"}` || m.SourceID != inst.Status().Instance {
		t.Fatalf("connected event: payload %s source %s (instance %s)", m.Payload, m.SourceID, inst.Status().Instance)
	}

	if err := syssock.WriteFrame(c, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := callRaw(t, inst, "astrid_net_read", []byte(handle))
	if err != nil || string(got) != "\x00hello" {
		t.Fatalf("read: %q, %v; want 0x00 hello", got, err)
	}
	if _, err := callRaw(t, inst, "astrid_net_write", []byte(handle), []byte("world")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if b, err := syssock.ReadFrame(c, 1<<20); err != nil || string(b) != "world" {
		t.Fatalf("client read %q, %v", b, err)
	}
	if got, err := callRaw(t, inst, "astrid_net_read", []byte(handle)); err != nil || string(got) != "\x02" {
		t.Fatalf("read with nothing sent: %q, %v; want 0x02 pending", got, err)
	}
	// A frame in pieces: the length prefix, then the body.
	if _, err := c.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	if got, err := callRaw(t, inst, "astrid_net_read", []byte(handle)); err != nil || string(got) != "\x02" {
		t.Fatalf("read of half a length prefix: %q, %v; want 0x02 pending", got, err)
	}
	if _, err := c.Write([]byte{0, 3, 'a', 'b', 'c'}); err != nil {
		t.Fatal(err)
	}
	if got, err := callRaw(t, inst, "astrid_net_read", []byte(handle)); err != nil || string(got) != "\x00abc" {
		t.Fatalf("read of the rest: %q, %v; want 0x00 abc (the half prefix kept)", got, err)
	}

	for _, tc := range []struct{ handle, want string }{
		{"x", "Invalid stream handle"},
		{"", "Invalid stream handle"},
		{"7", "Stream handle not found"},
		{"\xff", "invalid utf-8 sequence of 1 bytes from index 0"},
		{strings.Repeat("1", 1025), "memory allocation of 1025 bytes exceeds maximum allowed limit of 1024 bytes"},
	} {
		t.Run("read handle "+tc.want, func(t *testing.T) {
			if _, err := callRaw(t, inst, "astrid_net_read", []byte(tc.handle)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read %q: %v, want %q", tc.handle, err, tc.want)
			}
		})
	}

	c.Close()
	if got, err := callRaw(t, inst, "astrid_net_read", []byte(handle)); err != nil || string(got) != "\x01" {
		t.Fatalf("read after the client closed: %q, %v; want 0x01 closed", got, err)
	}
	if _, err := callRaw(t, inst, "astrid_net_close_stream", []byte(handle)); err != nil {
		t.Fatal(err)
	}
	m = w.nextMsg("client.v1.disconnect")
	if string(m.Payload) != `{"type":"disconnect","reason":"stream_closed"}` {
		t.Fatalf("disconnect event: %s", m.Payload)
	}
	if _, err := callRaw(t, inst, "astrid_net_close_stream", []byte(handle)); err != nil {
		t.Fatalf("closing again: %v (idempotent)", err)
	}
	if _, err := callRaw(t, inst, "astrid_net_write", []byte(handle), []byte("x")); err == nil || !strings.Contains(err.Error(), "Stream handle not found") {
		t.Fatalf("write to a closed stream: %v", err)
	}
	h.Shutdown(context.Background())
}

// TestNetFrameTooLarge: a length prefix over 10 MiB traps the read before anything is read.
func TestNetFrameTooLarge(t *testing.T) {
	_, inst, state := netHost(t, "")
	handle, c := acceptOne(t, inst, state)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 10<<20+1)
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := callRaw(t, inst, "astrid_net_read", []byte(handle)); err == nil || !strings.Contains(err.Error(), "Payload too large (max 10MB)") {
		t.Fatalf("read: %v", err)
	}
}

// TestNetRefusedHandshakes: a client with a wrong token, another protocol or a bad handshake is
// dropped (with upstream's answer where upstream answers) and the accept goes on waiting: the
// next good client gets the first stream.
func TestNetRefusedHandshakes(t *testing.T) {
	_, inst, state := netHost(t, "")
	token, err := syssock.ReadToken(syssock.TokenPath(state))
	if err != nil {
		t.Fatal(err)
	}
	frame := func(v string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(v)))
		return append(b, v...)
	}
	req := func(tok string, version int) []byte {
		return frame(fmt.Sprintf(`{"token":%q,"protocol_version":%d,"client_version":"1"}`, tok, version))
	}
	cases := []struct {
		name string
		send []byte
		want string // the reason answered, "" for a connection dropped without an answer
	}{
		{"wrong token", req(strings.Repeat("0", 64), 1), "authentication failed"},
		{"malformed token", req("zz", 1), "authentication failed"},
		{"other protocol", req(token, 2), "Protocol version mismatch (client=2, server=1)"},
		{"too large", binary.BigEndian.AppendUint32(nil, 4097), ""},
		{"not JSON", frame("hello"), ""},
		{"missing field", frame(`{"token":"` + token + `"}`), ""},
	}
	ch := asyncRaw(t, inst, "astrid_net_accept", nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", syssock.SocketPath(state))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, err := syssock.ReadFrame(c, syssock.MaxHandshakeBytes)
			if tc.want == "" {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("got %q, %v; want the connection dropped", b, err)
				}
				return
			}
			var resp syssock.HandshakeResponse
			if err != nil || json.Unmarshal(b, &resp) != nil || resp.Status != "error" || !strings.HasPrefix(resp.Reason, tc.want) {
				t.Fatalf("response %s, %v; want status error, reason %q", b, err, tc.want)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("after the refusal: %v, want the connection closed", err)
			}
		})
	}
	select {
	case r := <-ch:
		t.Fatalf("accept returned %q, %v for a refused client", r.out, r.err)
	default:
	}
	dial(t, state)
	if r := waitRaw(t, ch, "accept"); r.err != nil || string(r.out) != "1" {
		t.Fatalf("accept: %q, %v; want stream 1 (no refused client got a stream)", r.out, r.err)
	}
}

// TestNetCap: a capsule holds at most 8 streams; accept traps with upstream's text past them,
// poll_accept answers "", and closing one makes room.
func TestNetCap(t *testing.T) {
	_, inst, state := netHost(t, "")
	for k := 1; k <= 8; k++ {
		if h, _ := acceptOne(t, inst, state); h != fmt.Sprint(k) {
			t.Fatalf("stream %d got handle %s", k, h)
		}
	}
	if _, err := callRaw(t, inst, "astrid_net_accept", nil); err == nil || !strings.Contains(err.Error(), "connection cap reached (8/8)") {
		t.Fatalf("9th accept: %v", err)
	}
	if out, err := callRaw(t, inst, "astrid_net_poll_accept", nil); err != nil || len(out) != 0 {
		t.Fatalf("9th poll_accept: %q, %v; want empty", out, err)
	}
	if _, err := callRaw(t, inst, "astrid_net_close_stream", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if h, _ := acceptOne(t, inst, state); h != "9" {
		t.Fatalf("after a close: handle %s, want 9 (handles are not reused)", h)
	}
}

// TestNetNoNetBind: a capsule without net_bind has no listener and may not bind.
func TestNetNoNetBind(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "raw")
	for _, tc := range []struct{ fn, want string }{
		{"astrid_net_bind_unix", "security denied net_bind: capsule 'raw' denied: net_bind not declared in manifest"},
		{"astrid_net_accept", "No CLI Socket Listener available in HostState"},
		{"astrid_net_poll_accept", "No CLI Socket Listener available in HostState"},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			if _, err := callRaw(t, inst, tc.fn, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s: %v, want %q", tc.fn, err, tc.want)
			}
		})
	}
}

// TestNetUnloadEndsBlockedCalls: stopping the capsule ends an accept waiting for a client and a
// read waiting for a frame's body at once, and the stop is not held up by them.
func TestNetUnloadEndsBlockedCalls(t *testing.T) {
	for _, which := range []string{"accept", "read"} {
		t.Run(which, func(t *testing.T) {
			_, inst, state := netHost(t, "")
			var ch <-chan rawResult
			if which == "accept" {
				ch = asyncRaw(t, inst, "astrid_net_accept", nil)
			} else {
				handle, c := acceptOne(t, inst, state)
				// A length prefix of 10 MiB and 10 bytes of it: the read waits up to 15 s for the rest.
				if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, 10<<20), make([]byte, 10)...)); err != nil {
					t.Fatal(err)
				}
				ch = asyncRaw(t, inst, "astrid_net_read", []byte(handle))
			}
			waitFor(t, 30*time.Second, "the call to be running", func() bool { return storeBusy(inst) })
			start := time.Now()
			inst.Stop(context.Background())
			r := waitRaw(t, ch, which)
			// Left alone, the accept waits for the call's limit (60 s) and the read 15 s.
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("stop and the %s took %s; the blocked call should end at once", which, took)
			}
			if r.err == nil && which == "accept" {
				t.Fatalf("accept returned %q after unload", r.out)
			}
		})
	}
}

// nextMsg returns the next message on topic, failing the test after 30 s.
func (w *busWatch) nextMsg(topic string) bus.Message {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		for i, m := range w.got {
			if m.Topic == topic {
				w.got = append(w.got[:i:i], w.got[i+1:]...)
				return m
			}
		}
		env, err := w.sub.Recv(ctx, 10<<20)
		if err != nil {
			w.t.Fatalf("waiting for a message on %s: %v (received meanwhile: %d others)", topic, err, len(w.got))
		}
		w.got = append(w.got, env.Messages...)
	}
}

// The peer uid check: a client of another user is dropped before its handshake. It needs a
// client process running as nobody, which the test binary itself serves as (netClientMain).

// netClientEnv, when set to a socket path, makes the test binary a socket client (see
// netClientMain) instead of running the tests.
const netClientEnv = "ASTRID_TEST_NET_CLIENT"

// netClientMain connects to the socket in $ASTRID_TEST_NET_CLIENT, sends the handshake with
// the token in $ASTRID_TEST_NET_TOKEN, and prints "ok", "refused: REASON" or "dropped: ERROR".
func netClientMain() int {
	c, err := net.Dial("unix", os.Getenv(netClientEnv))
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer c.Close()
	if err := syssock.ClientHandshake(c, os.Getenv("ASTRID_TEST_NET_TOKEN"), "nobody"); err != nil {
		if strings.Contains(err.Error(), "rejected") {
			fmt.Println("refused:", err)
		} else {
			fmt.Println("dropped:", err)
		}
		return 0
	}
	fmt.Println("ok")
	return 0
}

// TestNetPeerUID: a client running as another user (nobody) is dropped even with the right
// token, and the accept goes on to the next client of the host's user.
func TestNetPeerUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a client as another user (nobody) needs root: setpriv cannot change the uid otherwise")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed: no way to run a client as nobody")
	}
	if out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/true").CombinedOutput(); err != nil {
		t.Skipf("setpriv cannot run a process as nobody here: %v: %s", err, out)
	}
	_, inst, state := netHost(t, "")
	token, err := syssock.ReadToken(syssock.TokenPath(state))
	if err != nil {
		t.Fatal(err)
	}
	// The permissions are the first barrier (nobody cannot reach a 0600 socket in a 0700
	// directory); open them to reach the second, the peer uid check.
	for p, mode := range map[string]os.FileMode{state: 0o711, syssock.RunDir(state): 0o711, syssock.SocketPath(state): 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	// A copy of the test binary that nobody may run.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(shortStateDir(t), "client")
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	ch := asyncRaw(t, inst, "astrid_net_accept", nil)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin)
	cmd.Env = []string{netClientEnv + "=" + syssock.SocketPath(state), "ASTRID_TEST_NET_TOKEN=" + token}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "dropped:") {
		t.Fatalf("client as nobody: %s (%v); want it dropped without an answer", out, err)
	}
	dial(t, state)
	if r := waitRaw(t, ch, "accept"); r.err != nil || string(r.out) != "1" {
		t.Fatalf("accept: %q, %v; want stream 1, the host user's client", r.out, r.err)
	}
}
