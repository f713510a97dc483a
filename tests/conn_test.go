package tests

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
)

// TestRogueShimIsRefused: a shim (here rawshim, standing in for a guest that escaped wasmtime)
// dials another instance's sockets and tries what that instance may do: publish and spawn
// through the host's services for it, and make its shim publish through the shim's own server.
// Every connection is refused before anything is read from it, nothing is published or spawned,
// the victim carries on, and the refusal is logged; a shim caught dialing another instance's
// host services is stopped as compromised.
func TestRogueShimIsRefused(t *testing.T) {
	raw := rawShim(t)
	tests := []struct {
		name string
		// hostSide picks the host's broker socket of the victim; otherwise the victim shim's own.
		hostSide bool
		// logged is the refusal's log line.
		logged string
	}{
		{"the host's services for another instance", true, "refused a connection to this capsule's host services"},
		{"another instance's shim", false, "refused a connection to the shim's server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The host's broker sockets go to its TMPDIR: a directory of this test's own, so
			// that the victim's sockets can be told apart from everything else on the machine.
			tmp, err := os.MkdirTemp("", "astrid-rogue-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(tmp) })
			t.Setenv("TMPDIR", tmp)
			logs := &logCapture{}
			tw := &testWriter{t: t}
			t.Cleanup(tw.close)
			h := newHost(t, func(c *host.Config) {
				s, err := host.VerifyShim(raw)
				if err != nil {
					t.Fatal(err)
				}
				c.Shim = s
				c.HealthInterval = time.Hour // rawshim has no Health
				c.Logger = hclog.New(&hclog.LoggerOptions{Name: "test-host", Output: io.MultiWriter(logs, tw), Level: hclog.Debug})
			})
			rogue, _ := loadCapsule(t, h, "hello")
			before := unixSockets(t, tmp)
			victim, _ := loadCapsule(t, h, victimCapsule(t))
			var targets []string
			for _, s := range unixSockets(t, tmp) {
				shimSide := strings.HasPrefix(s, h.RuntimeDir()+string(filepath.Separator))
				if !slices.Contains(before, s) && shimSide != tc.hostSide {
					targets = append(targets, s)
				}
			}
			if len(targets) != 1 {
				t.Fatalf("want one socket of the victim's, found %v (before the victim: %v)", targets, before)
			}
			stolen := h.Bus().Subscribe("test.v1.stolen")
			defer stolen.Close()

			input, _ := json.Marshal(map[string]any{"sockets": targets})
			out, err := rogue.Call(context.Background(), "intrude", input, 0)
			var ce *host.CallError
			switch {
			case err == nil:
				var res map[string]map[string]string
				if err := json.Unmarshal(out, &res); err != nil {
					t.Fatalf("rogue's report %q: %v", out, err)
				}
				for attempt, got := range res[targets[0]] {
					if got == "accepted" {
						t.Errorf("%s through the victim's socket was accepted", attempt)
					}
				}
			case errors.As(err, &ce) && tc.hostSide: // the host stopped the rogue before it answered
			default:
				t.Fatal(err)
			}

			waitFor(t, 10*time.Second, "the refusal in the log", func() bool { return logs.has(tc.logged) })
			if tc.hostSide {
				line := logs.line(tc.logged)
				if !strings.Contains(line, victim.ID()) || !strings.Contains(line, "peer_pid="+strconv.Itoa(rogue.Pid())) {
					t.Errorf("the refusal names neither the victim %s nor the rogue's pid %d: %s", victim.ID(), rogue.Pid(), line)
				}
				waitFor(t, 10*time.Second, "the rogue to be stopped", func() bool { return !processAlive(rogue.Pid()) })
				if st, reason := rogue.State(); st != host.StateFailed || !strings.Contains(reason, "connected to the host services of capsule "+victim.ID()) {
					t.Errorf("rogue: %s (%s)", st, reason)
				}
			}
			if env := stolen.Poll(1 << 20); len(env.Messages) != 0 {
				t.Errorf("published through the victim: %+v", env.Messages)
			}
			if _, err := os.Stat(filepath.Join(h.Workspace(), "pwned")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("spawned through the victim: %v", err)
			}
			if st, reason := victim.State(); st != host.StateReady {
				t.Fatalf("victim: %s (%s)", st, reason)
			}
			if got := call(t, victim, "echo", "still here"); got != "still here" {
				t.Fatalf("victim answered %q", got)
			}
		})
	}
}

// victimCapsule is a capsule (run by rawshim, which ignores its code) that may publish on
// test.v1.* and run /bin/sh: what an intruder would borrow.
func victimCapsule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wasm, err := os.ReadFile(filepath.Join(capsules["ipc"], "ipc.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	toml := `[package]
name = "victim"
version = "0.1.0"
astrid-version = ">=0.5.0"

[[component]]
id = "victim"
file = "victim.wasm"

[capabilities]
ipc_publish = ["test.v1.*"]
host_process = ["/bin/sh"]
`
	if err := os.WriteFile(filepath.Join(dir, "victim.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// unixSockets lists the unix sockets under dir, sorted.
func unixSockets(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a socket directory removed while walking
			}
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// logCapture keeps a host's log for a test to search.
type logCapture struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// has reports whether a line contains s.
func (l *logCapture) has(s string) bool { return l.line(s) != "" }

// len is how many bytes of log there are so far.
func (l *logCapture) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// since is the log written after the first n bytes.
func (l *logCapture) since(n int) *logCapture {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &logCapture{}
	c.buf.WriteString(l.buf.String()[n:])
	return c
}

// line is the first line that contains s, or "".
func (l *logCapture) line(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.SplitSeq(l.buf.String(), "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
