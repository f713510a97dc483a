package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The programs the tests run inside the sandbox: the test binary under a "__" name. An escape
// attempt prints one line, "ok" (it got out) or the errno that stopped it ("EACCES"), and exits
// 0, so the test can tell a failed escape from a crashed program.

// testProgram runs the test program name (a sandboxed child) and returns its exit code.
func testProgram(name string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch name {
	case "__exit":
		code, _ := strconv.Atoi(arg(0))
		return code
	case "__signal":
		n, _ := strconv.Atoi(arg(0))
		syscall.Kill(os.Getpid(), syscall.Signal(n))
		time.Sleep(time.Minute) // the signal ends it first
		return 99
	case "__env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		return 0
	case "__pwd":
		wd, err := os.Getwd()
		if err != nil {
			fmt.Println(errnoName(err))
			return 1
		}
		fmt.Println(wd)
		return 0
	case "__tmp":
		return tmpProgram()
	case "__tree":
		return treeProgram(arg(0))
	case "__orphans":
		// Leaves two sleepers carrying arg(0) behind, one of them in a session of its own.
		self, _ := os.Executable()
		for _, setsid := range []bool{false, true} {
			attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: setsid}}
			if _, err := syscall.ForkExec(self, []string{self, "__sleep", arg(0)}, attr); err != nil {
				fmt.Println("fork:", err)
				return 1
			}
		}
		return 0
	case "__scratch":
		// Lists /tmp and /dev/shm, then leaves a file and a locked-down directory in each.
		for _, dir := range []string{"/tmp", "/dev/shm"} {
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			fmt.Printf("%s: %s\n", dir, strings.Join(names, ","))
			os.WriteFile(dir+"/left-behind", []byte("x"), 0o600)
			os.MkdirAll(dir+"/locked/deeper", 0o700)
			os.WriteFile(dir+"/locked/deeper/file", []byte("x"), 0o600)
			os.Chmod(dir+"/locked", 0)
		}
		return 0
	case "__sigtrap":
		// Handles SIGTERM: exits 7 when it comes.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("ready")
		<-sig
		return 7
	case "__ready":
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "__sigign":
		// Which signals the program starts with ignored (SigIgn in /proc/self/status).
		status, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "SigIgn:") {
				fmt.Println(strings.TrimSpace(strings.TrimPrefix(line, "SigIgn:")))
			}
		}
		return 0
	case "__sleep":
		time.Sleep(time.Hour)
		return 0
	case "__listen":
		// Listens on the abstract unix socket @arg(0) and on a UDP port of 127.0.0.1, says
		// "ready PORT" and waits: a peer for the attempts of another sandboxed process.
		ul, err := net.Listen("unix", "@"+arg(0))
		if err != nil {
			fmt.Println("unix:", errnoName(err))
			return 1
		}
		defer ul.Close()
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("udp:", errnoName(err))
			return 1
		}
		defer pc.Close()
		fmt.Println("ready", pc.LocalAddr().(*net.UDPAddr).Port)
		time.Sleep(time.Hour)
		return 0
	case "__ids":
		// What the program is: its pid and its parent's, its uids and capabilities.
		status, _ := os.ReadFile("/proc/self/status")
		fmt.Printf("pid=%d ppid=%d uid=%d\n", os.Getpid(), os.Getppid(), os.Getuid())
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "Cap") || strings.HasPrefix(line, "NoNewPrivs") || strings.HasPrefix(line, "Seccomp:") {
				fmt.Println(strings.Join(strings.Fields(line), " "))
			}
		}
		return 0
	case "__alloc":
		// Allocates and touches arg(0) MiB, then says so: past a memory limit it never gets there.
		mib, _ := strconv.Atoi(arg(0))
		var keep [][]byte
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("ok", len(keep))
		return 0
	case "__escape":
		fmt.Println(escape(arg(0), args[1:]))
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown test program %q\n", name)
	return 2
}

// errnoName names the errno in err ("EACCES"), or says what else err is.
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(errno))
	}
	return "error: " + err.Error()
}

// tmpProgram writes a file in $TMPDIR and in /tmp and lists both: a private tmp shows only what
// the program made.
func tmpProgram() int {
	for _, dir := range []string{os.TempDir(), "/tmp"} {
		err := os.WriteFile(dir+"/made-inside", []byte("x"), 0o644)
		entries, rerr := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		fmt.Printf("%s write=%s list=%s %s\n", dir, errnoName(err), errnoName(rerr), strings.Join(names, ","))
	}
	return 0
}

// treeProgram starts a child and a grandchild that calls setsid (out of the process group), both
// marked with token, says "ready" and waits to be killed.
func treeProgram(token string) int {
	self, _ := os.Executable()
	for _, setsid := range []bool{false, true} {
		attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setsid: setsid}}
		if _, err := syscall.ForkExec(self, []string{self, "__sleep", token}, attr); err != nil {
			fmt.Println("fork:", err)
			return 1
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
	return 0
}

// escape makes one escape attempt and says how it ended.
func escape(attempt string, args []string) string {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch attempt {
	case "write":
		return errnoName(os.WriteFile(arg(0), []byte("escaped\n"), 0o644))
	case "read":
		fi, err := os.Stat(arg(0))
		if err != nil {
			return errnoName(err)
		}
		if fi.IsDir() {
			entries, err := os.ReadDir(arg(0))
			if err != nil {
				return errnoName(err)
			}
			return fmt.Sprintf("ok %d", len(entries))
		}
		data, err := os.ReadFile(arg(0))
		if err != nil {
			return errnoName(err)
		}
		return fmt.Sprintf("ok %d", len(data))
	case "rename":
		// Replace arg(1) with a file made at arg(0), as a poisoned cache entry would be.
		if err := os.WriteFile(arg(0), []byte("poisoned\n"), 0o644); err != nil {
			return "setup: " + errnoName(err)
		}
		return errnoName(os.Rename(arg(0), arg(1)))
	case "chmod":
		return errnoName(os.Chmod(arg(0), 0o777))
	case "tcp":
		c, err := net.Dial("tcp", arg(0))
		if err != nil {
			return errnoName(err)
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		return "ok " + strings.TrimSpace(line)
	case "udp":
		c, err := net.Dial("udp", arg(0))
		if err != nil {
			return errnoName(err)
		}
		defer c.Close()
		_, err = c.Write([]byte("hello\n"))
		return errnoName(err)
	case "unix":
		// A name starting with @ is an abstract socket.
		c, err := net.Dial("unix", arg(0))
		if err != nil {
			return errnoName(err)
		}
		c.Close()
		return "ok"
	case "ptrace-traceme":
		_, _, e := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
		return errnoName(errnoOrNil(e))
	case "ptrace-attach":
		pid, _ := strconv.Atoi(arg(0))
		if arg(0) == "parent" {
			pid = os.Getppid()
		}
		err := syscall.PtraceAttach(pid)
		if err == nil {
			syscall.PtraceDetach(pid)
		}
		return errnoName(err)
	case "mount":
		return errnoName(unix.Mount("tmpfs", arg(0), "tmpfs", 0, ""))
	case "unshare-user":
		return errnoName(unix.Unshare(unix.CLONE_NEWUSER))
	case "clone":
		flags, _ := strconv.ParseUint(arg(0), 0, 64)
		return errnoName(errnoOrNil(rawClone(uintptr(flags))))
	case "clone3":
		return errnoName(errnoOrNil(rawClone3(unix.CLONE_NEWUSER)))
	case "kill":
		pid, _ := strconv.Atoi(arg(0))
		return errnoName(syscall.Kill(pid, syscall.SIGTERM))
	case "forkbomb":
		return forkBomb(arg(0))
	case "fsize":
		return fileTooBig(arg(0))
	}
	return "unknown attempt " + attempt
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawClone forks with clone(flags|SIGCHLD); the child exits at once, before running any Go code.
//
//go:nosplit
//go:norace
func rawClone(flags uintptr) syscall.Errno {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, flags|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return e
}

// cloneArgs is struct clone_args (linux/sched.h), version 0.
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls uint64
}

// rawClone3 forks with clone3; the child exits at once.
//
//go:nosplit
//go:norace
func rawClone3(flags uint64) syscall.Errno {
	args := cloneArgs{flags: flags, exitSignal: uint64(syscall.SIGCHLD)}
	r, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
	if e == 0 && r == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return e
}

// forkBomb forks children that pause until the tree is killed, up to max of them, and says when
// the kernel refused one.
func forkBomb(max string) string {
	n, _ := strconv.Atoi(max)
	for i := 0; i < n; i++ {
		if e := rawForkPause(); e != 0 {
			return fmt.Sprintf("%s after %d", errnoName(e), i)
		}
	}
	return fmt.Sprintf("ok %d", n)
}

// rawForkPause forks a child that waits in ppoll, without running Go code, until it is killed.
//
//go:nosplit
//go:norace
func rawForkPause() syscall.Errno {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		for {
			syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
		}
	}
	return e
}

// fileTooBig writes past RLIMIT_FSIZE: the write fails with EFBIG and SIGXFSZ arrives (handled
// here, or it would end the program).
func fileTooBig(path string) string {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGXFSZ)
	defer signal.Stop(sig)
	f, err := os.Create(path)
	if err != nil {
		return errnoName(err)
	}
	defer f.Close()
	_, err = f.Write(make([]byte, 1<<20))
	got := "no-sigxfsz"
	select {
	case <-sig:
		got = "sigxfsz"
	case <-time.After(5 * time.Second):
	}
	return errnoName(err) + " " + got
}
