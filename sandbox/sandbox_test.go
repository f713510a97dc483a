package sandbox

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// requireSandbox returns a Sandbox with policy Required on this machine's support, or skips the
// test with what is missing.
func requireSandbox(t *testing.T) *Sandbox {
	t.Helper()
	if err := support.CheckPolicy(Required); err != nil {
		t.Skipf("this machine cannot run policy required: %v", err)
	}
	return New(testBin, Required, support)
}

func TestProbeReport(t *testing.T) {
	report := support.Report()
	for _, l := range Layers() {
		if !strings.Contains(report, string(l)+" ") {
			t.Errorf("the report has no line for %s:\n%s", l, report)
		}
		if !support.Available(l) && support.Reason(l) == "" {
			t.Errorf("%s is unavailable without a reason", l)
		}
		if support.Available(l) && support.Reason(l) != "" {
			t.Errorf("%s is available with a reason: %q", l, support.Reason(l))
		}
	}
	sum := support.Summary()
	if !strings.HasPrefix(sum, "sandbox: cgroup=") || strings.Count(sum, "=") != len(Layers()) {
		t.Errorf("Summary() = %q", sum)
	}
	if got := support.Summary(LayerUserNS, LayerLandlock); !strings.Contains(got, "userns=on") || !strings.Contains(got, "pidns=off") ||
		(support.LandlockABI() > 0 && !strings.Contains(got, "landlock=v"+strconv.Itoa(support.LandlockABI()))) {
		t.Errorf("Summary(userns, landlock) = %q", got)
	}
	t.Logf("\n%s%s", report, sum)
}

// TestRequiredRefuses: under policy Required a missing namespace or landlock stops Command with an
// error naming the layer, why, and the flag that relaxes it; a missing best-effort layer does not.
func TestRequiredRefuses(t *testing.T) {
	const why = "switched off for the test"
	for _, tt := range []struct {
		missing Layer
		network bool
		refuse  bool
	}{
		{LayerUserNS, false, true},
		{LayerPIDNS, false, true},
		{LayerMountNS, false, true},
		{LayerNetNS, false, true},
		{LayerNetNS, true, false}, // a process with the network needs no network namespace
		{LayerLandlock, false, true},
		{LayerIPCNS, false, false},
		{LayerUTSNS, false, false},
		{LayerSeccomp, false, false},
		{LayerCgroup, false, false},
	} {
		name := string(tt.missing)
		if tt.network {
			name += "/network"
		}
		t.Run(name, func(t *testing.T) {
			// A machine with everything but the one layer, whatever this one has.
			sup := &Support{layers: map[Layer]layerStatus{}, landlockABI: 7}
			for _, l := range Layers() {
				sup.layers[l] = layerStatus{on: true}
			}
			sup = sup.Without(tt.missing, why)
			spec := program("__exit", "0")
			spec.Network = tt.network
			cmd, err := New(testBin, Required, sup).Command(spec)
			if !tt.refuse {
				if err != nil {
					t.Fatalf("Command refused: %v", err)
				}
				if slices.Contains(cmd.Layers, tt.missing) {
					t.Errorf("Layers %v has the missing %s", cmd.Layers, tt.missing)
				}
				_ = cmd.Close()
				return
			}
			if err == nil {
				_ = cmd.Close()
				t.Fatalf("Command accepted a spec without %s", tt.missing)
			}
			for _, want := range []string{string(tt.missing), why, "--sandbox=best-effort"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if err := sup.CheckPolicy(Required); err == nil && !tt.network {
				t.Error("CheckPolicy(Required) = nil with a required layer missing")
			}
			// Best effort runs without it, and says so in Layers.
			cmd, err = New(testBin, BestEffort, sup).Command(spec)
			if err != nil {
				t.Fatalf("best effort: %v", err)
			}
			_ = cmd.Close()
			if slices.Contains(cmd.Layers, tt.missing) {
				t.Errorf("best effort Layers %v has the missing %s", cmd.Layers, tt.missing)
			}
		})
	}
}

// TestHiddenExposed: what a process without a mount namespace can reach of its Hidden paths, and
// what each policy does about it. Policy Required names the path and how to avoid it;
// BestEffort lists it in Cmd.Exposed. A hidden path outside every allowed path is not exposed
// while landlock keeps the process out of it.
func TestHiddenExposed(t *testing.T) {
	workspace := t.TempDir()
	inside := filepath.Join(workspace, "state")
	outside := t.TempDir()
	for _, dir := range []string{inside, outside} {
		if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	full := &Support{layers: map[Layer]layerStatus{}, landlockABI: 7}
	for _, l := range Layers() {
		full.layers[l] = layerStatus{on: true}
	}
	noMount := full.Without(LayerMountNS, "switched off for the test")
	neither := noMount.Without(LayerLandlock, "switched off for the test")
	for _, tt := range []struct {
		name    string
		sup     *Support
		policy  Policy
		hidden  string
		exposed bool
		refused bool
	}{
		{"mount namespace hides it", full, Required, inside, false, false},
		{"inside the workspace, required", noMount, Required, inside, true, true},
		{"inside the workspace, best effort", noMount, BestEffort, inside, true, false},
		{"outside, landlock keeps it out", noMount, BestEffort, outside, false, false},
		{"outside, nothing keeps it out", neither, BestEffort, outside, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := program("__exit", "0")
			spec.ReadWrite = []string{workspace}
			spec.Hidden = []string{tt.hidden}
			sb := New(testBin, tt.policy, tt.sup)
			pool := sb.NewPool(t.TempDir(), 0)
			defer pool.Close()
			for _, command := range []func(Spec) (*Cmd, error){sb.Command, pool.Command} {
				cmd, err := command(spec)
				if tt.refused {
					if err == nil {
						_ = cmd.Close()
						t.Fatal("Command accepted a process that could write the hidden path")
					}
					for _, want := range []string{tt.hidden, "mountns", "--state DIR"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q does not say %q", err, want)
						}
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				_ = cmd.Close()
				if got := len(cmd.Exposed) > 0; got != tt.exposed || got && cmd.Exposed[0] != tt.hidden {
					t.Errorf("Exposed = %v, want exposed %v (%s)", cmd.Exposed, tt.exposed, tt.hidden)
				}
			}
		})
	}
}

// policies are the ways the basic tests run a program: through the helper in both modes, and
// without it.
func policies(t *testing.T) []struct {
	name string
	sb   *Sandbox
	exec bool
} {
	sb := requireSandbox(t)
	return []struct {
		name string
		sb   *Sandbox
		exec bool
	}{
		{"required", sb, false},
		{"required/exec", sb, true},
		{"off", New("", Off, nil), false},
	}
}

func TestRun(t *testing.T) {
	for _, p := range policies(t) {
		t.Run(p.name, func(t *testing.T) {
			for _, tt := range []struct {
				name string
				args []string
				want Exit
			}{
				{"exit 0", []string{"__exit", "0"}, Exit{}},
				{"exit 42", []string{"__exit", "42"}, Exit{Code: 42}},
				{"SIGTERM", []string{"__signal", "15"}, Exit{Code: -1, Signal: syscall.SIGTERM}},
				{"SIGKILL", []string{"__signal", "9"}, Exit{Code: -1, Signal: syscall.SIGKILL}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					if p.exec && tt.want.Signal != 0 {
						// In Exec mode the program is the init of its pid namespace, which the
						// kernel shields from its own signals.
						t.Skip("a pid namespace's init cannot signal itself to death")
					}
					spec := program(tt.args[0], tt.args[1:]...)
					spec.Exec = p.exec
					if got := runSpec(t, p.sb, spec).exit; got != tt.want {
						t.Errorf("exit = %v, want %v", got, tt.want)
					}
				})
			}
			t.Run("env is exactly Env", func(t *testing.T) {
				spec := program("__env")
				spec.Exec = p.exec
				spec.Env = []string{"A=1", "B=two words", "PATH=/nowhere"}
				got := strings.Split(strings.TrimSpace(runSpec(t, p.sb, spec).stdout), "\n")
				if !slices.Equal(got, spec.Env) {
					t.Errorf("environment %q, want %q", got, spec.Env)
				}
				spec.Env = nil
				if out := runSpec(t, p.sb, spec).stdout; out != "" {
					t.Errorf("nil Env gave the environment %q, want none", out)
				}
			})
			t.Run("Kill", func(t *testing.T) {
				spec := program("__sleep")
				spec.Exec = p.exec
				cmd, err := p.sb.Command(spec)
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				if err := cmd.Kill(); err != nil {
					t.Fatal(err)
				}
				if exit, err := cmd.Wait(); err != nil || exit != (Exit{Code: -1, Signal: syscall.SIGKILL}) {
					t.Errorf("Wait after Kill: %v, %v; want killed by SIGKILL", exit, err)
				}
			})
			t.Run("working directory", func(t *testing.T) {
				dir := t.TempDir()
				spec := program("__pwd")
				spec.Exec = p.exec
				spec.Dir = dir
				spec.ReadWrite = []string{dir}
				if got := strings.TrimSpace(runSpec(t, p.sb, spec).stdout); got != dir {
					t.Errorf("working directory %q, want %q", got, dir)
				}
			})
			t.Run("missing program", func(t *testing.T) {
				spec := Spec{Path: "/nonexistent/astrid-program", Exec: p.exec}
				cmd, err := p.sb.Command(spec)
				if err != nil {
					t.Fatal(err)
				}
				err = cmd.Start()
				if err == nil {
					cmd.Wait()
					t.Fatal("Start succeeded for a missing program")
				}
				if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/nonexistent/astrid-program") {
					t.Errorf("Start: %v, want a no such file error naming the program", err)
				}
				if p.sb.Policy() != Off && !strings.Contains(err.Error(), `exec: "/nonexistent/astrid-program": no such file or directory`) {
					t.Errorf("Start: %q", err)
				}
				if err := cmd.Kill(); err != nil {
					t.Errorf("Kill after a failed Start: %v", err)
				}
			})
		})
	}
}

// TestSetupFailure: a layer that cannot be applied fails Start with the step's name, and leaves
// nothing running.
func TestSetupFailure(t *testing.T) {
	sb := requireSandbox(t)
	for _, exec := range []bool{false, true} {
		spec := program("__exit", "0")
		spec.Exec = exec
		spec.ReadOnly = []string{"/nonexistent/astrid-read-only"}
		cmd, err := sb.Command(spec)
		if err != nil {
			t.Fatal(err)
		}
		err = cmd.Start()
		var se *StartError
		if !errors.As(err, &se) || !se.Setup || !strings.HasPrefix(err.Error(), "sandbox: landlock: ") ||
			!strings.Contains(err.Error(), "/nonexistent/astrid-read-only") {
			t.Errorf("exec=%v: Start: %v, want a landlock setup error naming the path", exec, err)
		}
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 127 {
			t.Errorf("exec=%v: the helper was not reaped with status 127: %v", exec, cmd.ProcessState)
		}
	}
}

func TestPrivateTmp(t *testing.T) {
	sb := requireSandbox(t)
	for _, tt := range []struct {
		name    string
		sup     *Support
		wantTmp string // what TMPDIR is inside; "" = the private directory itself
	}{
		{"mount namespace", support, "/tmp"},
		{"no mount namespace", support.Without(LayerMountNS, "test"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := sb
			if tt.sup != support {
				s = New(testBin, BestEffort, tt.sup)
			}
			// Something of the host's in /tmp, which a private /tmp must not show.
			host, err := os.CreateTemp("/tmp", "astrid-host-file-")
			if err != nil {
				t.Fatal(err)
			}
			host.Close()
			defer os.Remove(host.Name())
			private := t.TempDir()
			spec := program("__tmp")
			spec.PrivateTmp = private
			out := runSpec(t, s, spec).stdout
			lines := strings.Split(strings.TrimSpace(out), "\n")
			want := tt.wantTmp
			if want == "" {
				want = private
			}
			// The private tmp holds what the program made, and (bound back at its own path) the
			// directory of the program, which the tests keep under the host's /tmp.
			if len(lines) != 2 || !strings.HasPrefix(lines[0], want+" write=ok list=ok ") ||
				!strings.Contains(lines[0], "made-inside") || strings.Contains(lines[0], filepath.Base(host.Name())) {
				t.Fatalf("inside, $TMPDIR: %q, want %s, writable, with made-inside and not %s", out, want, host.Name())
			}
			if tt.wantTmp == "/tmp" && lines[1] != lines[0] {
				t.Errorf("inside, /tmp: %q, want the private tmp", lines[1])
			}
			if tt.wantTmp == "" && !strings.HasPrefix(lines[1], "/tmp write=EROFS") && !strings.HasPrefix(lines[1], "/tmp write=EACCES") {
				t.Errorf("inside, /tmp without a mount namespace: %q, want no write", lines[1])
			}
			if _, err := os.Stat(filepath.Join(private, "made-inside")); err != nil {
				t.Errorf("the file made in the private tmp is not in %s: %v", private, err)
			}
		})
	}
}

// TestKillTree: Kill ends the program, its child and a grandchild that left the process group
// with setsid: through the pid namespace, or the cgroup without one.
func TestKillTree(t *testing.T) {
	sb := requireSandbox(t)
	for _, tt := range []struct {
		name string
		sb   *Sandbox
		skip string
	}{
		{"pid namespace", sb, ""},
		{"cgroup without pid namespace", New(testBin, BestEffort, support.Without(LayerPIDNS, "test")),
			support.Reason(LayerCgroup)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skipf("no cgroup to find a setsid grandchild by: %s", tt.skip)
			}
			token := "astrid-kill-tree-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(len(tt.name))
			spec := program("__tree", token)
			spec.Cgroup = CgroupLimits{Pids: 64}
			cmd, err := tt.sb.Command(spec)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if line != "ready\n" {
				cmd.Kill()
				cmd.Wait()
				t.Fatalf("the tree said %q, %v", line, err)
			}
			if n := countProcesses(token); n != 4 {
				t.Errorf("%d processes carry the token before the kill, want 4 (helper, program, child, setsid grandchild)", n)
			}
			if err := cmd.Kill(); err != nil {
				t.Fatalf("Kill: %v", err)
			}
			exit, err := cmd.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if exit != (Exit{Code: -1, Signal: syscall.SIGKILL}) {
				t.Errorf("exit %v, want killed by SIGKILL", exit)
			}
			if n := countProcesses(token); n != 0 {
				t.Errorf("%d processes survived the kill", n)
			}
			for range 2 {
				if err := cmd.Kill(); err != nil {
					t.Errorf("Kill after Wait: %v", err)
				}
			}
		})
	}
}

// countProcesses counts the live processes whose command line has token (a zombie's is empty).
func countProcesses(token string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), token) {
			n++
		}
	}
	return n
}

// TestIdentity: inside, the program is not pid 1 (the helper is), has no capability, and runs
// with no_new_privs and a seccomp filter.
func TestIdentity(t *testing.T) {
	sb := requireSandbox(t)
	out := runSpec(t, sb, program("__ids")).stdout
	for _, want := range []string{
		"ppid=1 ", "uid=" + strconv.Itoa(os.Getuid()),
		"CapInh: 0000000000000000", "CapPrm: 0000000000000000", "CapEff: 0000000000000000",
		"CapBnd: 0000000000000000", "CapAmb: 0000000000000000", "NoNewPrivs: 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inside: %q lacks %q", out, want)
		}
	}
	if support.Available(LayerSeccomp) && !strings.Contains(out, "Seccomp: 2") {
		t.Errorf("inside: %q, want Seccomp: 2", out)
	}
}

// TestSignals: a signal to the process's group reaches the program, and the helper survives it to
// report how the program ended; the program starts with no signal ignored, even when the host had
// some ignored (as a host started with nohup does).
func TestSignals(t *testing.T) {
	sb := requireSandbox(t)
	for _, tt := range []struct {
		program string
		sig     syscall.Signal
		want    Exit
	}{
		{"__sigtrap", syscall.SIGTERM, Exit{Code: 7}},
		{"__ready", syscall.SIGTERM, Exit{Code: -1, Signal: syscall.SIGTERM}},
		{"__ready", syscall.SIGINT, Exit{Code: -1, Signal: syscall.SIGINT}},
		{"__ready", syscall.SIGHUP, Exit{Code: -1, Signal: syscall.SIGHUP}},
		{"__ready", syscall.SIGQUIT, Exit{Code: 2}}, // a Go program dumps its goroutines and exits 2
	} {
		t.Run(tt.program+"/"+tt.sig.String(), func(t *testing.T) {
			cmd, err := sb.Command(program(tt.program))
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
				cmd.Kill()
				cmd.Wait()
				t.Fatalf("the program said %q, %v", line, err)
			}
			if err := cmd.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			if exit, err := cmd.Wait(); err != nil || exit != tt.want {
				t.Errorf("after %v: %v, %v; want %v", tt.sig, exit, err, tt.want)
			}
		})
	}
	t.Run("ignored by the host", func(t *testing.T) {
		signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
		defer signal.Reset(syscall.SIGINT, syscall.SIGHUP)
		// The runtime leaves signal 32 alone; GNU make starts its jobs with it ignored.
		if !ignored(32) {
			ignore := kernelSigaction{handler: 1} // SIG_IGN
			syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, 32, uintptr(unsafe.Pointer(&ignore)), 0, 8, 0, 0)
			defer setDefault(32)
		}
		for _, exec := range []bool{false, true} {
			spec := program("__sigign")
			spec.Exec = exec
			if got := strings.TrimSpace(runSpec(t, sb, spec).stdout); got != "0000000000000000" {
				t.Errorf("exec=%v: the program starts with SigIgn %s, want none", exec, got)
			}
		}
	})
}

// TestPrivateShm: with a mount namespace /dev/shm is writable and the process's own; without,
// landlock keeps the host's out of reach.
func TestPrivateShm(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skipf("no /dev/shm here: %v", err)
	}
	sb := requireSandbox(t)
	name := "/dev/shm/astrid-sandbox-test-" + strconv.Itoa(os.Getpid())
	defer os.Remove(name)
	for _, tt := range []struct {
		name string
		sb   *Sandbox
		want string
	}{
		{"mount namespace", sb, "ok"},
		{"no mount namespace", New(testBin, BestEffort, support.Without(LayerMountNS, "test")), "EACCES"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.TrimSpace(runSpec(t, tt.sb, program("__escape", "write", name)).stdout); got != tt.want {
				t.Errorf("write %s: %q, want %q", name, got, tt.want)
			}
			if _, err := os.Stat(name); err == nil {
				t.Errorf("%s appeared in the host's /dev/shm", name)
			}
		})
	}
}

// TestShmPathBoundBack: a ReadWrite directory under the host's /dev/shm (a shim's socket
// directory, which the host makes in its runtime directory there) stays the host's own inside
// the sandbox, writable, while the rest of the host's /dev/shm stays out of sight (a private
// tmpfs covers it) or out of reach (landlock, without a mount namespace).
func TestShmPathBoundBack(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skipf("no /dev/shm here: %v", err)
	}
	sb := requireSandbox(t)
	rw, err := os.MkdirTemp("/dev/shm", "astrid-sandbox-rw-")
	if err != nil {
		t.Skipf("cannot make a directory in /dev/shm: %v", err)
	}
	defer os.RemoveAll(rw)
	sibling, err := os.CreateTemp("/dev/shm", "astrid-sandbox-sibling-")
	if err != nil {
		t.Fatal(err)
	}
	sibling.Close()
	defer os.Remove(sibling.Name())
	for _, tt := range []struct {
		name        string
		sb          *Sandbox
		wantSibling string // reading the host's other file in /dev/shm
	}{
		{"mount namespace", sb, "ENOENT"},
		{"no mount namespace", New(testBin, BestEffort, support.Without(LayerMountNS, "test")), "EACCES"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inside := filepath.Join(rw, "made-inside-"+strings.ReplaceAll(tt.name, " ", "-"))
			spec := program("__escape", "write", inside)
			spec.ReadWrite = []string{rw}
			if got := strings.TrimSpace(runSpec(t, tt.sb, spec).stdout); got != "ok" {
				t.Errorf("write %s: %q, want ok", inside, got)
			}
			if _, err := os.Stat(inside); err != nil {
				t.Errorf("the file written inside is not in the host's %s: %v", rw, err)
			}
			spec = program("__escape", "read", sibling.Name())
			spec.ReadWrite = []string{rw}
			if got := strings.TrimSpace(runSpec(t, tt.sb, spec).stdout); got != tt.wantSibling {
				t.Errorf("read %s: %q, want %s", sibling.Name(), got, tt.wantSibling)
			}
		})
	}
}
