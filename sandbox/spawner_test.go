package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// startSpawner starts a spawner from the test binary, ended with the test.
func startSpawner(t *testing.T) *Spawner {
	t.Helper()
	sp, err := New(testBin, BestEffort, support).StartSpawner()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// spawnOutput starts cmd through sp with a pipe on its stdout, and returns what it printed and
// how it ended.
func spawnOutput(t *testing.T, sp *Spawner, cmd *exec.Cmd) (string, syscall.WaitStatus) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.Stdout = w
	p, err := sp.Start(cmd)
	w.Close()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	out, _ := io.ReadAll(r)
	st, err := p.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return string(out), st
}

// TestSpawnerConfinement: a shim-like process (exec mode) the spawner starts from the sandbox's
// command is confined exactly as the same command started by the host: the same pid (the init
// of its own pid namespace), capabilities, no_new_privs and seccomp, and namespaces of its own.
func TestSpawnerConfinement(t *testing.T) {
	sb := requireSandbox(t)
	sp := startSpawner(t)
	describe := func(start func(*Cmd) string) string {
		spec := program("__ids")
		spec.Exec = true
		c, err := sb.Command(spec)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return start(c)
	}
	direct := describe(func(c *Cmd) string {
		var out strings.Builder
		c.Cmd.Stdout = &out
		if err := c.Cmd.Run(); err != nil {
			t.Fatalf("the host's start: %v", err)
		}
		return out.String()
	})
	spawned := describe(func(c *Cmd) string {
		out, st := spawnOutput(t, sp, c.Cmd)
		if !st.Exited() || st.ExitStatus() != 0 {
			t.Fatalf("the spawner's start ended with %v", st)
		}
		return out
	})
	if !strings.Contains(direct, "pid=1 ") || !strings.Contains(direct, "Seccomp: 2") {
		t.Fatalf("the host's start is not confined as the test expects:\n%s", direct)
	}
	if spawned != direct {
		t.Errorf("through the spawner:\n%s\nstarted by the host:\n%s", spawned, direct)
	}
	// Its namespaces are its own: neither the host's nor the spawner's.
	spec := program("__sleep")
	spec.Exec = true
	c, err := sb.Command(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := sp.Start(c.Cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer p.Signal(syscall.SIGKILL)
	for _, ns := range []string{"user", "pid", "net", "ipc", "uts", "mnt"} {
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.Pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		spawner, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", sp.proc.Pid, ns))
		if its == mine || its == spawner {
			t.Errorf("%s namespace %s: shared with the host (%s) or the spawner (%s)", ns, its, mine, spawner)
		}
	}
}

// TestSpawner: exit statuses and signals come back from the spawner; when it ends, the
// processes it started end too, and it starts no more.
func TestSpawner(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, sp *Spawner)
	}{
		{"exit status", func(t *testing.T, sp *Spawner) {
			_, st := spawnOutput(t, sp, exec.Command(testBin, "__exit", "3"))
			if !st.Exited() || st.ExitStatus() != 3 {
				t.Errorf("status %v, want exit 3", st)
			}
		}},
		{"stdout and environment", func(t *testing.T, sp *Spawner) {
			cmd := exec.Command(testBin, "__env")
			cmd.Env = []string{"ASTRID_SPAWNED=yes"}
			out, _ := spawnOutput(t, sp, cmd)
			if !strings.Contains(out, "ASTRID_SPAWNED=yes") {
				t.Errorf("output %q", out)
			}
		}},
		{"signal", func(t *testing.T, sp *Spawner) {
			p, err := sp.Start(exec.Command(testBin, "__sleep"))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			st, err := p.Wait()
			if err != nil || !st.Signaled() || st.Signal() != syscall.SIGKILL {
				t.Errorf("status %v (%v), want killed by SIGKILL", st, err)
			}
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("signal after the exit: %v", err)
			}
		}},
		{"signal while another goroutine waits", func(t *testing.T, sp *Spawner) {
			p, err := sp.Start(exec.Command(testBin, "__sleep"))
			if err != nil {
				t.Fatal(err)
			}
			waited := make(chan struct{})
			go func() {
				defer close(waited)
				p.Wait()
			}()
			for range 3 {
				if err := p.Signal(syscall.SIGKILL); err != nil {
					t.Error(err)
				}
			}
			<-waited
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("signal after Wait: %v", err)
			}
		}},
		{"the spawner ends: its processes end, and it starts no more", func(t *testing.T, sp *Spawner) {
			cmd := exec.Command(testBin, "__sleep")
			cmd.SysProcAttr = ProcessAttr()
			p, err := sp.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			pidfd, err := unix.PidfdOpen(p.Pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pidfd)
			sp.Close()
			if _, err := p.Wait(); err == nil {
				t.Error("Wait after the spawner ended: no error")
			}
			// The pidfd turns readable when the process exits (its parent-death signal).
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, 10_000); err != nil || n != 1 {
				t.Errorf("the process outlived the spawner (poll: %d, %v)", n, err)
			}
			if _, err := sp.Start(exec.Command(testBin, "__exit", "0")); err == nil {
				t.Error("Start after Close: no error")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, startSpawner(t))
		})
	}
}

// spawnRun starts c (an Exec-mode command) through sp with StartCmd, waits for it and returns
// what it printed and how it ended.
func spawnRun(t *testing.T, sp *Spawner, c *Cmd) result {
	t.Helper()
	defer c.Close()
	return runStarted(t, c, func() (func() (Exit, error), error) {
		p, err := sp.StartCmd(c)
		if err != nil {
			return nil, err
		}
		return func() (Exit, error) {
			st, err := p.Wait()
			return exitOf(st), err
		}, nil
	})
}

// spawnSleeper starts c (an Exec-mode command of __sleep) through sp with StartCmd; it is killed
// when t ends.
func spawnSleeper(t *testing.T, sp *Spawner, c *Cmd) *Spawned {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	p, err := sp.StartCmd(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		p.Wait()
	})
	return p
}

// netNS is the network namespace of process pid ("self" for the test).
func netNS(t *testing.T, pid string) string {
	t.Helper()
	ns, err := os.Readlink("/proc/" + pid + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestSpawnerSharedNetwork: the shims a spawner starts share its empty network namespace (a
// namespace of their own costs each start more than anything else the kernel does for it), and
// reach through it nothing they could not reach from one of their own: not each other's abstract
// unix sockets (landlock's scope), not each other over UDP or TCP (the loopback is down), not
// the host's abstract sockets (another namespace). A process with Network keeps the host's.
// Where the spawner may not share one (not root: TestUnprivileged runs it as nobody), or landlock
// cannot scope abstract sockets, each process gets a namespace of its own.
func TestSpawnerSharedNetwork(t *testing.T) {
	sb := requireSandbox(t)
	sp := startSpawner(t)
	if isRoot && !sp.SharesNet() {
		t.Fatal("a spawner run by root has no shared network namespace")
	}
	command := func(spec Spec) *Cmd {
		spec.Exec = true
		c, err := sb.Command(spec)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if !sp.SharesNet() || support.LandlockABI() < 6 {
		// A spawner that may not make a namespace (not root), or a landlock that does not scope
		// abstract unix sockets: each process gets a namespace of its own.
		seen := map[string]bool{netNS(t, "self"): true}
		for range 2 {
			q := spawnSleeper(t, sp, command(program("__sleep")))
			ns := netNS(t, strconv.Itoa(q.Pid))
			if seen[ns] {
				t.Errorf("network namespace %s is shared (spawner shares: %v, landlock ABI %d)", ns, sp.SharesNet(), support.LandlockABI())
			}
			seen[ns] = true
		}
		return
	}

	// The peer: a shim-like process listening on an abstract socket and a UDP port.
	name := fmt.Sprintf("astrid-test-%d", os.Getpid())
	peer := command(program("__listen", name))
	defer peer.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	peer.Cmd.Stdout = outW
	p, err := sp.StartCmd(peer)
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer p.Signal(syscall.SIGKILL)
	line, _ := bufio.NewReader(outR).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok {
		t.Fatalf("the peer said %q", line)
	}
	shared := netNS(t, strconv.Itoa(p.Pid))
	if shared == netNS(t, "self") {
		t.Fatalf("the peer is in the host's network namespace %s", shared)
	}

	// The host's own abstract socket, which no sandboxed process may reach.
	hostName := "@" + name + "-host"
	hl, err := net.Listen("unix", hostName)
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go func() {
		for {
			c, err := hl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	for _, tc := range []struct {
		name    string
		attempt []string
		want    string
	}{
		{"another shim's abstract socket", []string{"unix", "@" + name}, "EPERM"},  // landlock's scope
		{"the host's abstract socket", []string{"unix", hostName}, "ECONNREFUSED"}, // not in this namespace
		{"UDP to another shim", []string{"udp", "127.0.0.1:" + port}, "ENETUNREACH"},
		{"TCP to another shim", []string{"tcp", "127.0.0.1:" + port}, "EACCES"}, // landlock, before the route
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := command(program("__escape", tc.attempt...))
			if !c.netShareable {
				t.Fatalf("a process with %v does not share the network namespace", c.Layers)
			}
			r := spawnRun(t, sp, c)
			if got := strings.TrimSpace(r.stdout); got != tc.want || r.exit != (Exit{}) {
				t.Errorf("got %q (%v, stderr %q), want %q", got, r.exit, r.stderr, tc.want)
			}
		})
	}

	// The namespace is the peer's, and a process with Network is started in the host's (the
	// spawner returns to it after each shared start).
	for _, tc := range []struct {
		name    string
		network bool
		want    string
	}{
		{"without Network: the shared namespace", false, shared},
		{"with Network: the host's", true, netNS(t, "self")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := program("__sleep")
			spec.Network = tc.network
			q := spawnSleeper(t, sp, command(spec))
			if got := netNS(t, strconv.Itoa(q.Pid)); got != tc.want {
				t.Errorf("network namespace %s, want %s", got, tc.want)
			}
		})
	}
}

// TestSpawnerThreads: the spawner waits for the processes it started without an OS thread each
// (a host with hundreds of shims would have the spawner hold hundreds of threads), and still
// reports each one's exit.
func TestSpawnerThreads(t *testing.T) {
	sp := startSpawner(t)
	const n = 24
	var procs []*Spawned
	for range n {
		p, err := sp.Start(exec.Command(testBin, "__sleep"))
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sp.proc.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var threads int
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	for _, p := range procs {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Error(err)
		}
	}
	for _, p := range procs {
		if st, err := p.Wait(); err != nil || !st.Signaled() || st.Signal() != syscall.SIGKILL {
			t.Errorf("status %v (%v), want killed by SIGKILL", st, err)
		}
	}
	if threads == 0 || threads >= n {
		t.Errorf("the spawner has %d threads with %d processes running", threads, n)
	}
}

// TestSpawnerStartCmdExecOnly: StartCmd refuses a fork-mode command, whose helper would wait for
// a status pipe nobody reads.
func TestSpawnerStartCmdExecOnly(t *testing.T) {
	sb := requireSandbox(t)
	sp := startSpawner(t)
	c, err := sb.Command(program("__exit", "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p, err := sp.StartCmd(c); err == nil {
		p.Signal(syscall.SIGKILL)
		p.Wait()
		t.Fatal("StartCmd started a fork-mode command")
	}
}
