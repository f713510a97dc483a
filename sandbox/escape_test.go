package sandbox

import (
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The escape suite: real attempts, from a sandboxed test program, to get out. Each one must fail
// with the error of the layer that stops it; which layer that is depends on what the process got,
// so every attempt runs under several sets of layers (all of them, then without the mount
// namespace, then without landlock), which shows each layer doing its part on its own. An attempt
// that nothing in a set stops is skipped, saying so, rather than passed.

// escapeEnv is what the attempts aim at.
type escapeEnv struct {
	workspace   string // the process's ReadWrite directory
	outside     string // a directory (mode 0777) outside it
	outsideFile string // a file (mode 0644, the host user's) in outside
	home        string // the host user's home directory, "" if unreadable anyway
	tcp         string // a listener on 127.0.0.1 that says "hello"
	udp         string // a UDP socket on 127.0.0.1
	unixSock    string // a unix socket under /run, "" if the host cannot make one
	hostPid     int
	// The host's state directory inside the workspace (as when the host runs from $HOME, or
	// make run's bin/state), hidden from the process: a cached module and a secret in it.
	state, modules, victim, key string
}

// victimContent is what the cached module in the state directory holds.
const victimContent = "compiled module\n"

// escapeCase is one attempt.
type escapeCase struct {
	name string
	// attempt is the __escape program's arguments.
	attempt func(e *escapeEnv) []string
	// spec adjusts the process's spec.
	spec func(s *Spec)
	// want is what the attempt must print given the process's layers; "" when nothing in them
	// stops it (the case is skipped).
	want func(has func(Layer) bool, e *escapeEnv) string
	// exec: the attempt also runs in Exec mode (a shim's sandbox).
	exec bool
}

// isRoot: the host runs as root, and so (identity-mapped) does the process.
var isRoot = os.Geteuid() == 0

var escapeCases = []escapeCase{
	{
		name:    "write outside the workspace",
		attempt: func(e *escapeEnv) []string { return []string{"write", filepath.Join(e.outside, "escaped")} },
		want:    fsWrite,
		exec:    true,
	},
	{
		name:    "write in the state directory inside the workspace",
		attempt: func(e *escapeEnv) []string { return []string{"write", filepath.Join(e.state, "escaped")} },
		want:    hiddenOnly("EROFS"), // the empty read-only tmpfs over it
		exec:    true,
	},
	{
		name: "replace a cached module in the state directory",
		attempt: func(e *escapeEnv) []string {
			return []string{"rename", filepath.Join(e.workspace, "poison"), e.victim}
		},
		want: hiddenOnly("ENOENT"), // the cache is not there to replace
		exec: true,
	},
	{
		name:    "read a secret in the state directory",
		attempt: func(e *escapeEnv) []string { return []string{"read", e.key} },
		want:    hiddenOnly("ENOENT"),
		exec:    true,
	},
	{
		// A shim reads the module cache: it is bound back read-only, and still not replaceable.
		name: "replace a cached module the process may read",
		attempt: func(e *escapeEnv) []string {
			return []string{"rename", filepath.Join(e.workspace, "poison"), e.victim}
		},
		spec: func(s *Spec) { s.ReadOnly = append(s.ReadOnly, s.Hidden[0]+"/modules") },
		want: hiddenOnly("EXDEV"), // a mount of its own, read-only
		exec: true,
	},
	{
		// The control for the one above: the cache it may read is there.
		name:    "read a cached module the process may read",
		attempt: func(e *escapeEnv) []string { return []string{"read", e.victim} },
		spec:    func(s *Spec) { s.ReadOnly = append(s.ReadOnly, s.Hidden[0]+"/modules") },
		want:    func(func(Layer) bool, *escapeEnv) string { return "ok " + strconv.Itoa(len(victimContent)) },
		exec:    true,
	},
	{
		name:    "write in /etc",
		attempt: func(e *escapeEnv) []string { return []string{"write", "/etc/astrid-escaped"} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			if r := fsWrite(has, e); r != "" || isRoot {
				return r
			}
			return "EACCES" // file modes alone stop a user who is not root
		},
	},
	{
		name:    "chmod a file of the host user's",
		attempt: func(e *escapeEnv) []string { return []string{"chmod", e.outsideFile} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			if has(LayerMountNS) {
				return "EROFS" // landlock has no right for chmod: only the read-only mount stops it
			}
			return ""
		},
	},
	{
		name:    "read outside the workspace",
		attempt: func(e *escapeEnv) []string { return []string{"read", e.outsideFile} },
		want:    landlockOnly("EACCES"),
		exec:    true,
	},
	{
		name: "read the home directory",
		attempt: func(e *escapeEnv) []string {
			return []string{"read", e.home}
		},
		want: func(has func(Layer) bool, e *escapeEnv) string {
			if e.home == "" {
				return ""
			}
			return landlockOnly("EACCES")(has, e)
		},
	},
	{
		name:    "read /etc/shadow",
		attempt: func(e *escapeEnv) []string { return []string{"read", "/etc/shadow"} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			if _, err := os.Stat("/etc/shadow"); err != nil {
				return ""
			}
			switch {
			case !isRoot:
				return "EACCES" // not the owner
			case has(LayerMountNS):
				return "ok 0" // masked: root owns it, and landlock allows /etc
			}
			return ""
		},
	},
	{
		name:    "TCP to a listener of the host's",
		attempt: func(e *escapeEnv) []string { return []string{"tcp", e.tcp} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			switch {
			case has(LayerLandlock) && support.LandlockABI() >= 4:
				return "EACCES"
			case has(LayerNetNS):
				return "ENETUNREACH" // only a loopback, and it is down
			}
			return ""
		},
		exec: true,
	},
	{
		// The control for the one above: the listener is reachable when the network is allowed.
		name:    "TCP with Network",
		attempt: func(e *escapeEnv) []string { return []string{"tcp", e.tcp} },
		spec:    func(s *Spec) { s.Network = true },
		want:    func(func(Layer) bool, *escapeEnv) string { return "ok hello" },
		exec:    true,
	},
	{
		name:    "UDP to a socket of the host's",
		attempt: func(e *escapeEnv) []string { return []string{"udp", e.udp} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			switch {
			case has(LayerLandlock) && support.LandlockABI() >= 10:
				return "EACCES"
			case has(LayerNetNS):
				return "ENETUNREACH" // only a loopback, and it is down
			}
			return ""
		},
		exec: true,
	},
	{
		name:    "connect to a unix socket under /run",
		attempt: func(e *escapeEnv) []string { return []string{"unix", e.unixSock} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			switch {
			case e.unixSock == "":
				return ""
			case has(LayerMountNS):
				return "ENOENT" // /run is an empty tmpfs
			case has(LayerLandlock) && support.LandlockABI() >= 9:
				return "EACCES"
			}
			return ""
		},
	},
	{
		name:    "PTRACE_TRACEME",
		attempt: func(*escapeEnv) []string { return []string{"ptrace-traceme"} },
		want:    seccompOnly("EPERM"),
	},
	{
		name:    "PTRACE_ATTACH to the helper",
		attempt: func(*escapeEnv) []string { return []string{"ptrace-attach", "parent"} },
		want:    seccompOnly("EPERM"),
	},
	{
		name:    "mount a tmpfs",
		attempt: func(e *escapeEnv) []string { return []string{"mount", e.workspace} },
		want:    func(func(Layer) bool, *escapeEnv) string { return "EPERM" }, // seccomp, or no capability
		exec:    true,
	},
	{
		name:    "unshare a user namespace",
		attempt: func(*escapeEnv) []string { return []string{"unshare-user"} },
		want:    seccompOnly("EPERM"),
		exec:    true,
	},
	{
		name:    "clone with CLONE_NEWUSER",
		attempt: func(*escapeEnv) []string { return []string{"clone", "0x10000000"} },
		want:    seccompOnly("EPERM"),
		exec:    true,
	},
	{
		name:    "clone with CLONE_NEWNS",
		attempt: func(*escapeEnv) []string { return []string{"clone", "0x20000"} },
		want:    seccompOnly("EPERM"),
	},
	{
		name:    "clone3 (with CLONE_NEWUSER)",
		attempt: func(*escapeEnv) []string { return []string{"clone3"} },
		want:    seccompOnly("ENOSYS"),
	},
	{
		name:    "SIGTERM the host",
		attempt: func(e *escapeEnv) []string { return []string{"kill", strconv.Itoa(e.hostPid)} },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			switch {
			case has(LayerPIDNS):
				return "ESRCH" // the host's pid does not exist in here
			case has(LayerLandlock) && support.LandlockABI() >= 6:
				return "EPERM" // landlock's signal scope
			case !isRoot:
				return ""
			}
			return ""
		},
	},
	{
		name:    "fork past the pids limit",
		attempt: func(*escapeEnv) []string { return []string{"forkbomb", "1000"} },
		spec:    func(s *Spec) { s.Cgroup.Pids = 8 },
		want: func(has func(Layer) bool, e *escapeEnv) string {
			if has(LayerCgroup) {
				return "EAGAIN after"
			}
			return ""
		},
	},
	{
		name:    "write past RLIMIT_FSIZE",
		attempt: func(e *escapeEnv) []string { return []string{"fsize", filepath.Join(e.workspace, "big")} },
		spec:    func(s *Spec) { s.Rlimits.FileSize = 4096 },
		want:    func(func(Layer) bool, *escapeEnv) string { return "EFBIG sigxfsz" },
		exec:    true,
	},
}

// fsWrite: a write outside the writable paths meets the read-only mount first, landlock next.
func fsWrite(has func(Layer) bool, _ *escapeEnv) string {
	switch {
	case has(LayerMountNS):
		return "EROFS"
	case has(LayerLandlock):
		return "EACCES"
	}
	return ""
}

// hiddenOnly: only the mount namespace hides a path inside the workspace (landlock cannot carve
// it out of an allowed path).
func hiddenOnly(errno string) func(func(Layer) bool, *escapeEnv) string {
	return func(has func(Layer) bool, _ *escapeEnv) string {
		if has(LayerMountNS) {
			return errno
		}
		return ""
	}
}

// landlockOnly: only landlock stops the attempt.
func landlockOnly(errno string) func(func(Layer) bool, *escapeEnv) string {
	return func(has func(Layer) bool, _ *escapeEnv) string {
		if has(LayerLandlock) {
			return errno
		}
		return ""
	}
}

// seccompOnly: only seccomp stops the attempt.
func seccompOnly(errno string) func(func(Layer) bool, *escapeEnv) string {
	return func(has func(Layer) bool, _ *escapeEnv) string {
		if has(LayerSeccomp) {
			return errno
		}
		return ""
	}
}

func TestEscape(t *testing.T) {
	sb := requireSandbox(t)
	e := newEscapeEnv(t)
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	defer signal.Stop(terms)

	for _, p := range []struct {
		name string
		sb   *Sandbox
		exec bool
		// spawner: started as the host starts its shims, through a spawner (StartCmd), which
		// may share its empty network namespace with them.
		spawner bool
	}{
		{"all layers", sb, false, false},
		{"all layers/exec", sb, true, false},
		{"all layers/exec through the spawner", sb, true, true},
		{"without mount namespace", New(testBin, BestEffort, support.Without(LayerMountNS, "test")), false, false},
		{"without landlock", New(testBin, BestEffort, support.Without(LayerLandlock, "test")), false, false},
	} {
		t.Run(p.name, func(t *testing.T) {
			run := runCmd
			if p.spawner {
				sp := startSpawner(t)
				run = func(t *testing.T, cmd *Cmd) result { return spawnRun(t, sp, cmd) }
			}
			for _, c := range escapeCases {
				if p.exec && !c.exec {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					spec := program("__escape", c.attempt(e)...)
					spec.Exec = p.exec
					spec.Dir = e.workspace
					spec.ReadWrite = []string{e.workspace}
					spec.Hidden = []string{e.state}
					if c.spec != nil {
						c.spec(&spec)
					}
					cmd, err := p.sb.Command(spec)
					if err != nil {
						t.Fatal(err)
					}
					want := c.want(func(l Layer) bool { return slices.Contains(cmd.Layers, l) }, e)
					if want == "" {
						cmd.Close()
						t.Skipf("nothing in %v stops it", cmd.Layers)
					}
					r := run(t, cmd)
					got := strings.TrimSpace(r.stdout)
					if !strings.HasPrefix(got, want) || r.exit != (Exit{}) {
						t.Errorf("%s: got %q (%v, stderr %q), want %q", c.name, got, r.exit, r.stderr, want)
					}
				})
			}
		})
	}
	if _, err := os.Stat(filepath.Join(e.outside, "escaped")); err == nil {
		t.Error("a file was written outside the workspace")
	}
	if _, err := os.Stat(filepath.Join(e.state, "escaped")); err == nil {
		t.Error("a file was written in the hidden state directory")
	}
	if b, err := os.ReadFile(e.victim); err != nil || string(b) != victimContent {
		t.Errorf("the cached module in the hidden state directory was replaced: %q, %v", b, err)
	}
	select {
	case <-terms:
		t.Error("a sandboxed process signalled the host")
	default:
	}
}

// newEscapeEnv makes the targets of the escape attempts; they are removed when t ends.
func newEscapeEnv(t *testing.T) *escapeEnv {
	e := &escapeEnv{workspace: t.TempDir(), outside: outsideDir(t), hostPid: os.Getpid()}
	e.state = filepath.Join(e.workspace, "bin", "state")
	e.modules = filepath.Join(e.state, "modules")
	e.victim, e.key = filepath.Join(e.modules, "victim.cwasm"), filepath.Join(e.state, "key")
	if err := os.MkdirAll(e.modules, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, content := range map[string]string{e.victim: victimContent, e.key: "secret\n"} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(e.outside, 0o777); err != nil { // only the sandbox may stop a write there
		t.Fatal(err)
	}
	e.outsideFile = filepath.Join(e.outside, "secret")
	if err := os.WriteFile(e.outsideFile, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if home, err := os.UserHomeDir(); err == nil {
		if _, err := os.ReadDir(home); err == nil {
			e.home = home
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.tcp = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	e.udp = pc.LocalAddr().String()
	if dir, err := os.MkdirTemp("/run", "astrid-sandbox-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(dir) })
		if ul, err := net.Listen("unix", filepath.Join(dir, "sock")); err == nil {
			t.Cleanup(func() { ul.Close() })
			e.unixSock = filepath.Join(dir, "sock")
		}
	}
	return e
}

// outsideDir makes the directory the escape attempts aim at: under /var/tmp where it can, out
// of the way of a private /tmp (which would hide it, and the attempt fail before any layer is
// asked).
func outsideDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/var/tmp", "astrid-escape-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runCmd starts a prepared command (a Pool's too: its output goes through pipes), waits for it
// and returns what it printed and how it ended.
func runCmd(t *testing.T, cmd *Cmd) result {
	t.Helper()
	return runStarted(t, cmd, func() (func() (Exit, error), error) {
		return cmd.Wait, cmd.Start()
	})
}

// runStarted runs cmd with pipes on its stdout and stderr: start starts it and returns how to
// wait for it. It returns what cmd printed and how it ended.
func runStarted(t *testing.T, cmd *Cmd, start func() (wait func() (Exit, error), err error)) result {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	wait, err := start()
	outW.Close()
	errW.Close()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stderr := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(errR)
		stderr <- b
	}()
	stdout, _ := io.ReadAll(outR)
	r := result{stdout: string(stdout), stderr: string(<-stderr)}
	if r.exit, err = wait(); err != nil {
		t.Fatalf("Wait: %v (stderr: %s)", err, r.stderr)
	}
	return r
}

// TestEscapeControl: unconfined, the attempts work, so the escape suite can fail.
func TestEscapeControl(t *testing.T) {
	e := newEscapeEnv(t)
	off := New("", Off, nil)
	for _, c := range []struct {
		attempt []string
		want    string
	}{
		{[]string{"write", filepath.Join(e.outside, "control")}, "ok"},
		{[]string{"read", e.outsideFile}, "ok 7"},
		{[]string{"chmod", e.outsideFile}, "ok"},
		{[]string{"tcp", e.tcp}, "ok hello"},
		{[]string{"udp", e.udp}, "ok"},
		{[]string{"clone", "0x10000000"}, "ok"},
		{[]string{"clone3"}, "ok"},
	} {
		t.Run(c.attempt[0], func(t *testing.T) {
			spec := program("__escape", c.attempt...)
			if got := strings.TrimSpace(runSpec(t, off, spec).stdout); got != c.want {
				t.Errorf("unconfined %v: %q, want %q", c.attempt, got, c.want)
			}
		})
	}
}
