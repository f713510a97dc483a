package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox/internal/statusline"
)

// The helper: astrid-host re-executed as "astrid-host __sandbox-exec SPEC -- PROGRAM ARGS...",
// already inside the namespaces the host cloned it into. Go's os/exec has no hook between fork
// and exec, and landlock and seccomp act on the calling process, so the helper confines itself
// and then either becomes the program (Exec) or starts it and stays as the init of the tree.
//
// The helper is on the path of every sandboxed spawn, so it must stay cheap: no package-level
// state to initialise, and the one slow thing it has to do (installing signal handlers, a round
// trip to the runtime's signal thread each) runs alongside the rest of the setup.

// HelperMain runs the sandbox helper and never returns. The host's main calls it first thing when
// os.Args[1] is HelperArg, with the arguments after HelperArg (os.Args itself is accepted too).
//
// In order it joins the process's cgroup, sets up the mount namespace (private /proc, /tmp and
// /dev/shm, the host filesystem read-only, /run hidden), drops every capability, sets the rlimits,
// applies landlock and, last, seccomp (after no_new_privs). Then in Exec mode it becomes the program; otherwise it starts the
// program, reaps everything orphaned in the tree and reports the program's exit to the host.
// A failed step ends it with status 127 and a message naming the step ("landlock: ...") on the
// status pipe, or on stderr when nobody listens there.
func HelperMain(args []string) {
	// Never unlocked: the program's parent-death signal, the capability bounding set and the
	// exec all belong to this one thread.
	runtime.LockOSThread()
	if len(args) > 1 && args[1] == HelperArg {
		args = args[2:]
	} else if len(args) > 0 && args[0] == HelperArg {
		args = args[1:]
	}
	if len(args) > 0 && args[0] == probeArg {
		probeMain(args[1:])
	}
	if len(args) > 0 && args[0] == SpawnArg {
		spawnMain()
	}
	h, err := parseHelperArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid sandbox: %v\n", err)
		helperExit(127)
	}
	h.run()
}

// helperExit ends the helper without the runtime's exit hooks: nothing of the helper's is buffered, and
// a race-enabled build (tests) would sleep a second in them on every exit with status 0.
func helperExit(code int) {
	syscall.Exit(code)
}

// helper is one run of the helper.
type helper struct {
	spec       wireSpec
	privateShm bool // /dev/shm is a tmpfs of the helper's own
	path       string
	argv       []string // argv[0] is the path
	env        []string
	status     *os.File // nil when nobody listens
}

// parseHelperArgs parses SPEC -- PROGRAM ARGS...
func parseHelperArgs(args []string) (*helper, error) {
	if len(args) < 3 || args[1] != "--" {
		return nil, fmt.Errorf("usage: %s SPEC -- PROGRAM [ARGS...]", HelperArg)
	}
	h := &helper{path: args[2], argv: args[2:]}
	if err := json.Unmarshal([]byte(args[0]), &h.spec); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return h, nil
}

func (h *helper) run() {
	if fd := h.spec.Status; fd > 0 {
		// Close-on-exec: in Exec mode the host reads EOF after "exec" as "the program runs", and
		// in fork mode the program must not hold the pipe (it would outlive the helper).
		syscall.CloseOnExec(fd)
		h.status = os.NewFile(uintptr(fd), "status")
	}
	h.env = os.Environ()
	// Installing handlers costs a round trip to the runtime's signal thread per signal; it runs
	// alongside the setup and must be done before the program starts.
	signalsDone := make(chan struct{})
	go func() {
		defer close(signalsDone)
		handleSignals(h.spec.Exec)
	}()
	h.step("cgroup", h.joinCgroups)
	if h.spec.MountNS {
		h.step("mount namespace", h.setupMounts)
	}
	h.setTmpEnv()
	h.step("capabilities", dropCapabilities)
	h.step("rlimits", h.setRlimits)
	if h.spec.Landlock {
		h.step("landlock", h.applyLandlock)
	}
	<-signalsDone
	if h.spec.Seccomp {
		h.step("seccomp", installSeccomp)
	}
	if h.spec.Serve {
		h.serve()
	}
	if h.spec.Exec {
		// "exec", then EOF when the pipe closes on exec: the host tells a program that runs from
		// a helper that died before it got there.
		h.report(statusline.Line{Kind: statusline.Exec})
		err := syscall.Exec(h.path, h.argv, h.env)
		h.fail(false, fmt.Sprintf("exec: %q: %v", h.path, err), err)
	}
	h.forkAndReap()
}

// step runs one setup step, failing the helper with the step's name.
func (h *helper) step(name string, f func() error) {
	if err := f(); err != nil {
		h.fail(true, name+": "+err.Error(), err)
	}
}

// fail reports err (on the status pipe as "error setup|exec ERRNO MESSAGE", and on stderr when the
// helper becomes the program or nobody listens) and exits 127, as a shell does for a command that
// cannot run.
func (h *helper) fail(setup bool, msg string, err error) {
	msg = strings.ReplaceAll(msg, "\n", " ")
	var errno syscall.Errno
	errors.As(err, &errno)
	h.report(statusline.Line{Kind: statusline.Error, Setup: setup, Errno: int(errno), Msg: msg})
	if h.status == nil || h.spec.Exec {
		fmt.Fprintf(os.Stderr, "astrid sandbox: %s\n", msg)
	}
	helperExit(127)
}

// report writes one status line, if anybody listens.
func (h *helper) report(l statusline.Line) {
	if h.status != nil {
		_, _ = h.status.WriteString(l.String())
	}
}

// reportExit writes how the program ended; last says a warm helper ends after it.
func (h *helper) reportExit(e Exit, last bool) {
	h.report(statusline.Line{Kind: statusline.Exit, Code: e.Code, Signal: int(e.Signal), Last: last})
}

// tmpDir is where the program's private tmp directory is, as the helper and the program see it.
func (h *helper) tmpDir() string {
	if h.spec.MountNS {
		return "/tmp"
	}
	return h.spec.PrivateTmp
}

// setTmpEnv points the program's TMPDIR at its private tmp directory, if it has one.
func (h *helper) setTmpEnv() {
	if h.spec.PrivateTmp != "" {
		h.setEnv("TMPDIR", h.tmpDir())
	}
}

// setEnv sets one variable of the program's environment.
func (h *helper) setEnv(name, value string) {
	prefix := name + "="
	out := h.env[:0]
	for _, kv := range h.env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	h.env = append(out, prefix+value)
}

// joinCgroups moves the helper into the cgroups the host made for it, before anything else runs,
// so the whole tree is counted.
func (h *helper) joinCgroups() error {
	for _, dir := range h.spec.Cgroups {
		// "0" is the writer itself; its pid would be 1 here, in its own pid namespace.
		if err := os.WriteFile(dir+"/cgroup.procs", []byte("0"), 0); err != nil {
			return err
		}
	}
	return nil
}

// forkAndReap starts the program and stays as the init of its tree: it reaps every process that
// ends up orphaned with it, and when the program exits it reports how, and exits too (which, in a
// pid namespace, ends whatever the program left behind).
func (h *helper) forkAndReap() {
	if os.Getpid() != 1 {
		// Without a pid namespace the orphans of the tree come to the helper instead of init.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	// The program runs as the same uid next to the helper, which keeps its capabilities in the
	// user namespace: not dumpable, it cannot be read or written through /proc/PID/mem. The
	// program itself is dumpable again after its exec.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	pid, err := syscall.ForkExec(h.path, h.argv, &syscall.ProcAttr{
		Env:   h.env,
		Files: []uintptr{0, 1, 2},
		// Same process group as the helper: the host signals the group, which reaches both.
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		h.fail(false, fmt.Sprintf("exec: %q: %v", h.path, err), err)
	}
	h.report(statusline.Line{Kind: statusline.Started, PID: pid})
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// ECHILD while the program was not reaped: nothing sensible is left to do.
			h.reportExit(Exit{Code: -1}, false)
			helperExit(127)
		}
		if wpid != pid {
			continue // an orphan
		}
		exit := exitOf(ws)
		h.reportExit(exit, false)
		code := exit.Code
		if exit.Signal != 0 {
			code = 128 + int(exit.Signal)
		}
		if !h.spec.PIDNS {
			// What the program left in its group goes with it, as it would with a pid namespace.
			_ = syscall.Kill(0, syscall.SIGKILL)
		}
		helperExit(code)
	}
}

// fatalSignals are the signals a host sends to end a process group that would end a Go program
// that does not ask for them: SIGHUP, SIGINT and SIGTERM kill it, SIGQUIT dumps its goroutines.
// The runtime ignores the other catchable signals it is not asked for (SIGUSR1, SIGPIPE, SIGALRM,
// the real-time ones...), and SIGTSTP and the like stop the helper as they stop the program, as
// for a job in a terminal. Signals the runtime turns into a crash (SIGSEGV, SIGABRT...) still end
// the helper, and with it the tree, if the host sends them: each handler costs a round trip to
// the runtime's signal thread on every spawn.
var fatalSignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT}

// handleSignals sets the helper's signal handling before it starts the program.
//
// In fork mode the helper must outlive signals meant for the program: the host signals the whole
// process group, and an init that died of SIGTERM would take the program down with SIGKILL before
// it could handle its own SIGTERM. Each fatal signal gets a handler whose deliveries are dropped.
//
// In both modes the program must start with default dispositions: handled signals are reset to
// their defaults at exec, ignored ones stay ignored. The runtime handles every signal except
// SIGHUP and SIGINT when they were ignored at start (a host started with nohup, or in the
// background of a shell), so those get a handler too. Never signal.Ignore, for the same reason.
// The signals the runtime leaves alone (32 and 33, which libc reserves for itself; GNU make
// starts its jobs with both ignored) are set back to SIG_DFL when ignored: nothing in the
// helper sends them.
func handleSignals(exec bool) {
	var sigs []os.Signal
	for _, s := range fatalSignals {
		if !exec || ((s == syscall.SIGHUP || s == syscall.SIGINT) && ignored(s)) {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) > 0 {
		signal.Notify(make(chan os.Signal, 1), sigs...)
	}
	for _, s := range libcSignals {
		if ignored(s) {
			setDefault(s)
		}
	}
}

// libcSignals are the signals the Go runtime never installs a handler for on Linux (SIGCANCEL
// and SIGSETXID of glibc and musl), so an ignored disposition inherited from the host would
// reach the program.
var libcSignals = []syscall.Signal{32, 33}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on Linux.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// ignored reports whether sig's disposition is SIG_IGN.
func ignored(sig syscall.Signal) bool {
	var old kernelSigaction
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	return errno == 0 && old.handler == 1 // SIG_IGN
}

// setDefault sets sig's disposition to SIG_DFL. A raw system call: libc refuses to touch 32
// and 33 in a cgo build.
func setDefault(sig syscall.Signal) {
	var dfl kernelSigaction // handler 0: SIG_DFL
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
}

// dropCapabilities empties the ambient, inheritable and bounding sets, so the program gets no
// capability at exec even as uid 0 (which it is for a root host, in its identity-mapped user
// namespace, where capabilities would reach files owned by root). The helper keeps its own.
func dropCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear the ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_SETPCAP) != 0 {
		for c := 0; ; c++ {
			err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
			if err == unix.EINVAL {
				break // past the last capability this kernel knows
			}
			if err != nil {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	// Without CAP_SETPCAP (an unprivileged helper without a user namespace) the bounding set
	// stays, but there is nothing to gain through it: the helper has no capability to pass on,
	// and no_new_privs closes setuid and file capabilities.
	if data[0].Inheritable != 0 || data[1].Inheritable != 0 {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capset: %w", err)
		}
	}
	return nil
}
