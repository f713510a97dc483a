package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/sandbox"
)

// The process host functions end to end: a real guest (tests/testdata/capsules/procs) asks a
// real shim, which asks the host, which runs real children in the sandbox.

// procCall calls one of the procs capsule's exports with req as JSON input.
func procCall(t *testing.T, inst *host.Instance, export string, req any) (string, error) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := inst.Call(context.Background(), export, in, 30*time.Second)
	return string(out), err
}

// mustProc is procCall that fails the test on an error and decodes the output into res.
func mustProc(t *testing.T, inst *host.Instance, export string, req, res any) {
	t.Helper()
	out, err := procCall(t, inst, export, req)
	if err != nil {
		t.Fatalf("%s %v: %v", export, req, err)
	}
	if res != nil {
		if err := json.Unmarshal([]byte(out), res); err != nil {
			t.Fatalf("%s: output %q: %v", export, out, err)
		}
	}
}

// spawnResult is the SDK's ProcessResult as the procs capsule outputs it.
type spawnResult struct {
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	ExitCode  int    `json:"exit_code"`
	Signal    int    `json:"signal"`
	Truncated bool   `json:"truncated"`
	TimedOut  bool   `json:"timed_out"`
}

// sh is a request to run a shell script.
func sh(script string) map[string]any {
	return map[string]any{"cmd": "/bin/sh", "args": []string{"-c", script}}
}

// marked is a request whose process (and every descendant) carries a unique environment marker,
// so the test can count survivors by scanning /proc.
func marked(t *testing.T, script string) (map[string]any, string) {
	mark := fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	req := sh(script)
	req["env"] = map[string]string{"ASTRID_TEST_MARK": mark}
	return req, mark
}

// markedPids lists the live (non-zombie) processes whose environment holds mark (the sandbox
// helpers included), or only those running comm if it is not empty.
func markedPids(mark string, comm ...string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, []byte("ASTRID_TEST_MARK="+mark+"\x00")) {
			continue
		}
		name, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if len(comm) > 0 && strings.TrimSpace(string(name)) != comm[0] {
			continue
		}
		if processState(pid) != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestProcessSpawn(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "procs")
	tests := []struct {
		name string
		req  map[string]any
		want spawnResult
	}{
		{"stdout, stderr and exit code", sh("echo out; echo err >&2; exit 3"), spawnResult{Stdout: "out\n", Stderr: "err\n", ExitCode: 3}},
		{"stdin", map[string]any{"cmd": "/bin/cat", "stdin": "fed through stdin"}, spawnResult{Stdout: "fed through stdin"}},
		{"no stdin is empty stdin", map[string]any{"cmd": "/bin/cat"}, spawnResult{}},
		{"killed by a signal", sh("kill -TERM $$"), spawnResult{ExitCode: -1, Signal: 15}},
		{"timeout kills the tree", map[string]any{"cmd": "/bin/sh", "args": []string{"-c", "sleep 30 & sleep 30"}, "timeout_ms": 200},
			spawnResult{ExitCode: -1, Signal: 9, TimedOut: true}},
		{"cwd inside the workspace", map[string]any{"cmd": "/bin/pwd", "cwd": "sub/dir"}, spawnResult{Stdout: "/sub/dir\n"}},
	}
	if err := os.MkdirAll(filepath.Join(h.Workspace(), "sub", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got spawnResult
			mustProc(t, inst, "spawn", tc.req, &got)
			if tc.name == "cwd inside the workspace" {
				// pwd prints the workspace's path as the process sees it.
				if !strings.HasSuffix(got.Stdout, tc.want.Stdout) {
					t.Fatalf("pwd = %q, want a path ending in %q", got.Stdout, tc.want.Stdout)
				}
				got.Stdout = tc.want.Stdout
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestProcessRequestRules: what a capsule may run, with which environment and where, is the
// host's decision; refusals name what was wrong.
func TestProcessRequestRules(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "procs")
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(h.Workspace(), "escape")); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		req  map[string]any
		want string
	}{
		{"command not in host_process", map[string]any{"cmd": "/bin/ls"}, "Security Check Failed: capsule 'procs' denied: host process '/bin/ls' not declared in manifest"},
		{"no path normalisation", map[string]any{"cmd": "sh"}, "host process 'sh' not declared in manifest"},
		{"reserved PATH", map[string]any{"cmd": "/bin/true", "env": map[string]string{"PATH": "/tmp"}}, "PATH"},
		{"reserved LD_PRELOAD", map[string]any{"cmd": "/bin/true", "env": map[string]string{"LD_PRELOAD": "/tmp/x.so"}}, "LD_PRELOAD"},
		{"absolute cwd", map[string]any{"cmd": "/bin/true", "cwd": "/etc"}, "/etc"},
		{"cwd with ..", map[string]any{"cmd": "/bin/true", "cwd": "../.."}, ".."},
		{"cwd through a symlink out", map[string]any{"cmd": "/bin/true", "cwd": "escape"}, "escape"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := procCall(t, inst, "spawn", tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	t.Run("environment", func(t *testing.T) {
		var got spawnResult
		mustProc(t, inst, "spawn", map[string]any{"cmd": "/usr/bin/env", "env": map[string]string{"GREETING": "hi"}}, &got)
		vars := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(got.Stdout), "\n") {
			k, v, _ := strings.Cut(line, "=")
			vars[k] = v
		}
		if vars["GREETING"] != "hi" || vars["PATH"] != os.Getenv("PATH") {
			t.Fatalf("the child's environment lacks the request's or the host's PATH: %q", got.Stdout)
		}
		allowed := map[string]bool{"GREETING": true, "PATH": true, "LANG": true, "LC_ALL": true, "LC_CTYPE": true, "TZ": true, "TMPDIR": true}
		for k := range vars {
			if !allowed[k] {
				t.Errorf("the child inherited %s from the host", k)
			}
		}
	})
}

// TestProcessBackground: background processes through the guest: output in ring buffers, wait
// with and without a timeout, signals, stdin, the per-instance limit and ownership.
func TestProcessBackground(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "procs")
	start := func(t *testing.T, req map[string]any) uint64 {
		t.Helper()
		var ids []uint64
		mustProc(t, inst, "start", req, &ids)
		return ids[0]
	}
	type waitResult struct {
		Running  bool `json:"running"`
		ExitCode int  `json:"exit_code"`
		Signal   int  `json:"signal"`
		TimedOut bool `json:"timed_out"`
	}

	t.Run("logs keep the newest 1 MiB", func(t *testing.T) {
		// 1.5 MiB of numbered lines, then a marker: the ring keeps the last 1 MiB.
		id := start(t, sh(`i=0; while [ $i -lt 100000 ]; do printf '%015d\n' $i; i=$((i+1)); done; echo END`))
		var w waitResult
		mustProc(t, inst, "wait", map[string]any{"id": id, "timeout_ms": 20000}, &w)
		if w.Running || w.ExitCode != 0 {
			t.Fatalf("wait: %+v", w)
		}
		var logs struct{ Stdout string }
		mustProc(t, inst, "logs", map[string]any{"id": id}, &logs)
		if len(logs.Stdout) != 1<<20 || !strings.HasSuffix(logs.Stdout, "000000000099999\nEND\n") {
			t.Fatalf("logs: %d bytes ending %q; want exactly 1 MiB ending with the last line", len(logs.Stdout), logs.Stdout[max(0, len(logs.Stdout)-30):])
		}
		mustProc(t, inst, "logs", map[string]any{"id": id}, &logs)
		if logs.Stdout != "" {
			t.Fatalf("a second read returned %d bytes; the first drains the ring", len(logs.Stdout))
		}
		mustProc(t, inst, "kill", map[string]any{"id": id}, nil)
	})

	t.Run("wait times out and the process stays", func(t *testing.T) {
		id := start(t, map[string]any{"cmd": "/bin/cat"})
		var w waitResult
		mustProc(t, inst, "wait", map[string]any{"id": id, "timeout_ms": 50}, &w)
		if !w.Running || !w.TimedOut {
			t.Fatalf("wait on a running cat: %+v", w)
		}
		var n int
		mustProc(t, inst, "write", map[string]any{"id": id, "data": "hello\n", "close": true}, &n)
		if n != len("hello\n") {
			t.Fatalf("wrote %d bytes", n)
		}
		mustProc(t, inst, "wait", map[string]any{"id": id, "timeout_ms": 10000}, &w)
		if w.Running || w.ExitCode != 0 {
			t.Fatalf("cat after its stdin closed: %+v", w)
		}
		var logs struct{ Stdout string }
		mustProc(t, inst, "logs", map[string]any{"id": id}, &logs)
		if logs.Stdout != "hello\n" {
			t.Fatalf("cat echoed %q", logs.Stdout)
		}
		mustProc(t, inst, "kill", map[string]any{"id": id}, nil)
	})

	t.Run("signals", func(t *testing.T) {
		id := start(t, map[string]any{"cmd": "/bin/sleep", "args": []string{"60"}})
		mustProc(t, inst, "signal", map[string]any{"id": id, "signal": "term"}, nil)
		var w waitResult
		mustProc(t, inst, "wait", map[string]any{"id": id, "timeout_ms": 10000}, &w)
		if w.Running || w.Signal != int(syscall.SIGTERM) || w.ExitCode != -1 {
			t.Fatalf("sleep after term: %+v", w)
		}
		if _, err := procCall(t, inst, "signal", map[string]any{"id": id, "signal": "bogus"}); err == nil || !strings.Contains(err.Error(), "term") {
			t.Fatalf("an unknown signal: %v", err)
		}
		mustProc(t, inst, "kill", map[string]any{"id": id}, nil)
	})

	t.Run("the limit of 8 and ownership", func(t *testing.T) {
		var ids []uint64
		mustProc(t, inst, "start", map[string]any{"cmd": "/bin/sleep", "args": []string{"60"}, "count": 8}, &ids)
		_, err := procCall(t, inst, "start", map[string]any{"cmd": "/bin/sleep", "args": []string{"60"}})
		if err == nil || !strings.Contains(err.Error(), "background process limit reached (max 8)") {
			t.Fatalf("a ninth process: %v", err)
		}
		// Another instance of the same capsule does not see these processes.
		other, _ := loadCapsule(t, h, capsuleVariant(t, "procs", ""))
		want := fmt.Sprintf("no background process with id %d", ids[0])
		for _, export := range []string{"logs", "kill", "wait", "signal"} {
			_, err := procCall(t, other, export, map[string]any{"id": ids[0], "signal": "term"})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s of another instance's process: %v, want %q", export, err, want)
			}
		}
		mustProc(t, inst, "kill", map[string]any{"id": ids[0]}, nil)
		mustProc(t, inst, "start", map[string]any{"cmd": "/bin/sleep", "args": []string{"60"}}, &ids)
		_, err = procCall(t, inst, "logs", map[string]any{"id": 999})
		if err == nil || !strings.Contains(err.Error(), "no background process with id 999") {
			t.Fatalf("an unknown id: %v", err)
		}
	})
}

// TestProcessReaping: everything a capsule started is killed and reaped when it unloads, when its
// shim crashes and when the host exits, including a grandchild that left the process group.
func TestProcessReaping(t *testing.T) {
	script := "setsid sleep 300 & sleep 300 & wait"
	ends := []struct {
		name string
		end  func(t *testing.T, h *host.Host, inst *host.Instance)
	}{
		{"unload", func(t *testing.T, h *host.Host, inst *host.Instance) { inst.Stop(context.Background()) }},
		{"shim crash", func(t *testing.T, h *host.Host, inst *host.Instance) {
			if err := syscall.Kill(inst.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the crash to be noticed", func() bool { st, _ := inst.State(); return st == host.StateFailed })
		}},
		{"host shutdown", func(t *testing.T, h *host.Host, inst *host.Instance) { h.Shutdown(context.Background()) }},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			inst, _ := loadCapsule(t, h, "procs")
			req, mark := marked(t, script)
			req["count"] = 3
			mustProc(t, inst, "start", req, nil)
			syncReq, syncMark := marked(t, script)
			syncIn, _ := json.Marshal(syncReq)
			go inst.Call(context.Background(), "spawn", syncIn, 30*time.Second) // a synchronous spawn in progress, too
			// 3 × 2 sleeps in the background, and 2 sleeps in the spawn.
			waitFor(t, 10*time.Second, "the processes to start", func() bool {
				return len(markedPids(mark, "sleep")) == 6 && len(markedPids(syncMark, "sleep")) == 2
			})
			tc.end(t, h, inst)
			waitFor(t, 10*time.Second, "every process to be gone", func() bool {
				return len(markedPids(mark))+len(markedPids(syncMark)) == 0
			})
		})
	}
}

// TestProcessStateDirInWorkspace: hole 2 of issue 10. With the state directory inside the
// workspace (the default when the host runs from $HOME, and make run's bin/state), a capsule
// allowed to run /bin/sh tries to replace every cached artefact (its own and the kernel's) and
// to write a new file there; each attempt fails, and the cache is unchanged byte for byte.
func TestProcessStateDirInWorkspace(t *testing.T) {
	workspace := t.TempDir()
	state := filepath.Join(workspace, "bin", "state")
	h := newHost(t, func(c *host.Config) { c.Workspace, c.StateDir = workspace, state })
	if testSandbox.Policy() != sandbox.Required {
		t.Skip("this machine cannot run policy required: without a mount namespace nothing hides a path inside the workspace")
	}
	inst, _ := loadCapsule(t, h, "procs")
	before := snapshot(t, state)
	if len(before) == 0 {
		t.Fatal("the load cached nothing in the state directory")
	}
	for _, tt := range []struct{ name, script string }{
		{"replace the cached artefacts", `for f in bin/state/modules/*; do echo poisoned > x && mv -f x "$f" || exit 1; done; ls bin/state/modules | grep .`},
		{"overwrite the cached artefacts", `for f in bin/state/modules/*; do echo poisoned > "$f" || exit 1; done; ls bin/state/modules | grep .`},
		{"write a new file", `echo x > bin/state/modules/new.cwasm`},
		{"remove the state directory", `rm -rf bin/state && test ! -e bin/state`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got spawnResult
			mustProc(t, inst, "spawn", sh(tt.script), &got)
			if got.ExitCode == 0 {
				t.Errorf("the capsule's process reached the state directory: %+v", got)
			}
		})
	}
	if after := snapshot(t, state); !maps.Equal(before, after) {
		t.Errorf("the state directory changed:\nbefore %v\nafter  %v", before, after)
	}
}

// snapshot maps every file under dir to a digest of its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[p] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
