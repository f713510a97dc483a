package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The spawner: a long-lived helper process (the helper binary run as "__sandbox-spawn") that
// forks helpers for the host. A clone that makes a user namespace cannot be a vfork (Go's os/exec
// writes the child's uid map from the parent while the child waits), so a helper cloned by the
// host copies the host's whole address space, tears the copy down again at its exec, and leaves
// every host page write-protected for a copy-on-write fault; with many shims starting at once
// that was the largest single part of a shim's start. The spawner's address space is a few
// megabytes, so its clones are cheap. It starts exactly the exec.Cmd the host prepared
// (Sandbox.Command): the same helper, namespaces, identity map and descriptors, so the process
// gets the same confinement; only the parent differs (the spawner, which dies with the host, and
// so kills its children through their parent-death signal).
//
// The host and the spawner talk over a private socket pair (SOCK_SEQPACKET). The spawner's first
// message says whether it has an empty network namespace to share (sharednet.go). Then a request
// is one JSON message with the process's descriptors attached; the spawner answers it with the
// pid and a pidfd (or an error), and later sends the exit status.

// SpawnArg, after HelperArg, makes the helper a spawner.
const SpawnArg = "__sandbox-spawn"

// spawnFD is the spawner's end of the socket pair.
const spawnFD = 3

// maxSpawnMessage bounds a message either way (a request carries the process's arguments and
// environment).
const maxSpawnMessage = 1 << 20

// maxSpawnFiles bounds the descriptors a request carries: stdin, stdout, stderr and ExtraFiles.
const maxSpawnFiles = 16

// spawnRequest is one process for the spawner to start.
type spawnRequest struct {
	ID          uint64                 `json:"id"`
	Path        string                 `json:"path"`
	Args        []string               `json:"args"`
	Env         []string               `json:"env"`
	Dir         string                 `json:"dir,omitempty"`
	Cloneflags  uintptr                `json:"clone,omitempty"`
	UidMappings []syscall.SysProcIDMap `json:"uids,omitempty"`
	GidMappings []syscall.SysProcIDMap `json:"gids,omitempty"`
	AmbientCaps []uintptr              `json:"ambient,omitempty"`
	Setpgid     bool                   `json:"setpgid,omitempty"`
	Pdeathsig   syscall.Signal         `json:"pdeathsig,omitempty"`
	Files       int                    `json:"files"` // attached: stdin, stdout, stderr, ExtraFiles
	// SharedNet forks the process inside the spawner's empty network namespace (Cloneflags
	// then has no CLONE_NEWNET).
	SharedNet bool `json:"sharednet,omitempty"`
}

// spawnReply is the spawner's answer to a request (Pid or Err, a pidfd attached with a Pid), or
// later the process's exit (Exited); its first message, ID 0, is the hello (SharedNet).
type spawnReply struct {
	ID        uint64 `json:"id"`
	Pid       int    `json:"pid,omitempty"`
	Err       string `json:"err,omitempty"`
	Exited    bool   `json:"exited,omitempty"`
	Status    uint32 `json:"status,omitempty"` // a syscall.WaitStatus
	SharedNet bool   `json:"sharednet,omitempty"`
}

// Spawner is the host's handle on a spawner process. Its methods are safe for concurrent use.
type Spawner struct {
	proc *os.Process
	sock *os.File
	// sharedNet: the spawner has an empty network namespace that processes may share
	// (StartCmd).
	sharedNet bool

	mu      sync.Mutex // one request at a time: send it, take its reply
	replies chan spawnMessage
	nextID  uint64

	pmu     sync.Mutex
	running map[uint64]*Spawned // started and not yet exited
	done    chan struct{}       // closed when the reader has ended (the spawner is gone)
	waited  chan struct{}       // closed once the spawner process is reaped
}

// spawnMessage is a reply and the descriptor that came with it.
type spawnMessage struct {
	reply spawnReply
	fd    int // -1 without one
}

// Spawned is a process a Spawner started.
type Spawned struct {
	// Pid is the process's pid (in the host's pid namespace).
	Pid int
	// mu guards pidfd, which Wait closes (nil after) and Signal uses.
	mu     sync.Mutex
	pidfd  *os.File
	exited chan struct{} // closed once status is set
	status syscall.WaitStatus
	err    error // the spawner ended before the process did
}

// StartSpawner starts the sandbox's helper as a spawner (its own process group, SIGKILL when
// the host dies). Close ends it.
func (s *Sandbox) StartSpawner() (*Spawner, error) {
	if s.policy == Off || s.helper == "" {
		return nil, errors.New("sandbox: a spawner needs the sandbox helper")
	}
	if s.check != nil {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("sandbox: helper %s: %w", s.helper, err)
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: spawner socket: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "spawner"), os.NewFile(uintptr(fds[1]), "spawner")
	cmd := exec.Command(s.helper, HelperArg, SpawnArg)
	cmd.Env = []string{}
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{theirs} // fd 3: spawnFD
	cmd.SysProcAttr = ProcessAttr()
	err = cmd.Start()
	theirs.Close() // the spawner has its own: a spawner that dies is EOF here
	if err != nil {
		mine.Close()
		return nil, fmt.Errorf("sandbox: start the spawner: %w", err)
	}
	sp := &Spawner{proc: cmd.Process, sock: mine, replies: make(chan spawnMessage, 1), running: make(map[uint64]*Spawned), done: make(chan struct{}), waited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(sp.waited)
	}()
	hello, err := sp.hello()
	if err != nil {
		mine.Close()
		_ = sp.proc.Kill()
		<-sp.waited
		return nil, fmt.Errorf("sandbox: start the spawner: %w", err)
	}
	sp.sharedNet = hello.SharedNet
	go sp.read()
	return sp, nil
}

// hello reads the spawner's first message.
func (sp *Spawner) hello() (spawnReply, error) {
	buf := make([]byte, maxSpawnMessage)
	data, fds, err := recvMsg(int(sp.sock.Fd()), buf, make([]byte, unix.CmsgSpace(4)))
	if err != nil {
		return spawnReply{}, fmt.Errorf("its hello: %w", err)
	}
	closeFDs(fds)
	var r spawnReply
	if err := json.Unmarshal(data, &r); err != nil || r.ID != 0 || r.Pid != 0 || r.Err != "" || r.Exited {
		return spawnReply{}, fmt.Errorf("its hello: %q", data)
	}
	return r, nil
}

// SharesNet reports whether the spawner has an empty network namespace to share (see StartCmd).
func (sp *Spawner) SharesNet() bool { return sp.sharedNet }

// read takes the spawner's messages until it is gone: replies to the request under way go to
// replies, exits to their process. Then every process still running is reported as lost.
func (sp *Spawner) read() {
	defer close(sp.done)
	defer close(sp.replies)
	buf := make([]byte, maxSpawnMessage)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		data, fds, err := recvMsg(int(sp.sock.Fd()), buf, oob)
		if err != nil {
			break
		}
		m := spawnMessage{fd: -1}
		if err := json.Unmarshal(data, &m.reply); err != nil {
			closeFDs(fds)
			break
		}
		if len(fds) > 0 {
			m.fd = fds[0]
			closeFDs(fds[1:])
		}
		if !m.reply.Exited {
			sp.replies <- m
			continue
		}
		if m.fd >= 0 {
			unix.Close(m.fd)
		}
		sp.pmu.Lock()
		p := sp.running[m.reply.ID]
		delete(sp.running, m.reply.ID)
		sp.pmu.Unlock()
		if p != nil {
			p.status = syscall.WaitStatus(m.reply.Status)
			close(p.exited)
		}
	}
	sp.pmu.Lock()
	defer sp.pmu.Unlock()
	for id, p := range sp.running {
		p.err = errors.New("sandbox: the spawner ended before the process")
		close(p.exited)
		delete(sp.running, id)
	}
}

// Start starts cmd, as cmd.Start would, from the spawner: cmd's path, arguments, environment,
// directory, stdin/stdout/stderr (each nil or an *os.File), ExtraFiles and the SysProcAttr fields
// the sandbox sets (namespaces, identity map, ambient capabilities, process group, parent-death
// signal). cmd itself is not started: Wait and Signal go through the returned Spawned.
func (sp *Spawner) Start(cmd *exec.Cmd) (*Spawned, error) {
	return sp.start(cmd, false)
}

// StartCmd starts the sandbox's command c (prepared by Command, not started; an Exec-mode one,
// as go-plugin's runner would) as Start does, with one difference: where the spawner has an
// empty network namespace and c may share it (see sharednet.go), c is started in that namespace
// rather than in a new one of its own, which is cheaper to start and to end and reaches no more.
func (sp *Spawner) StartCmd(c *Cmd) (*Spawned, error) {
	if c.status == nil || !c.status.spec.Exec || c.warm != nil {
		return nil, errors.New("sandbox: StartCmd takes an Exec-mode command from Sandbox.Command")
	}
	return sp.start(c.Cmd, sp.sharedNet && c.netShareable)
}

func (sp *Spawner) start(cmd *exec.Cmd, sharedNet bool) (*Spawned, error) {
	req := spawnRequest{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir}
	if req.Env == nil {
		req.Env = []string{}
	}
	if a := cmd.SysProcAttr; a != nil {
		req.Cloneflags, req.UidMappings, req.GidMappings = a.Cloneflags, a.UidMappings, a.GidMappings
		req.AmbientCaps, req.Setpgid, req.Pdeathsig = a.AmbientCaps, a.Setpgid, a.Pdeathsig
		if a.GidMappingsEnableSetgroups || a.Unshareflags != 0 || a.Setsid || a.Setctty || a.Credential != nil || a.Chroot != "" {
			return nil, errors.New("sandbox: the spawner does not take this SysProcAttr")
		}
	}
	if sharedNet {
		req.Cloneflags &^= syscall.CLONE_NEWNET
		req.SharedNet = true
	}
	var files []int
	for _, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		switch f := s.(type) {
		case nil:
			files = append(files, -1)
		case *os.File:
			files = append(files, int(f.Fd()))
		default:
			return nil, fmt.Errorf("sandbox: the spawner takes only files for stdio, not %T", s)
		}
	}
	for _, f := range cmd.ExtraFiles {
		files = append(files, int(f.Fd()))
	}
	if len(files) > maxSpawnFiles {
		return nil, fmt.Errorf("sandbox: %d descriptors for the spawner (at most %d)", len(files), maxSpawnFiles)
	}
	req.Files = len(files)
	// -1 (no file) goes as /dev/null, which the spawner's exec.Cmd gives a nil stdio anyway.
	var devnull *os.File
	for i, fd := range files {
		if fd >= 0 {
			continue
		}
		if devnull == nil {
			var err error
			if devnull, err = os.Open(os.DevNull); err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			defer devnull.Close()
		}
		files[i] = int(devnull.Fd())
	}
	p := &Spawned{exited: make(chan struct{})}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.nextID++
	req.ID = sp.nextID
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox: encode the spawn request: %w", err)
	}
	if len(data) > maxSpawnMessage {
		return nil, fmt.Errorf("sandbox: spawn request of %d bytes (at most %d)", len(data), maxSpawnMessage)
	}
	// Registered before the request goes: the exit can follow the reply at once.
	sp.pmu.Lock()
	sp.running[req.ID] = p
	sp.pmu.Unlock()
	forget := func() {
		sp.pmu.Lock()
		delete(sp.running, req.ID)
		sp.pmu.Unlock()
	}
	if err := unix.Sendmsg(int(sp.sock.Fd()), data, unix.UnixRights(files...), nil, 0); err != nil {
		forget()
		return nil, fmt.Errorf("sandbox: send to the spawner: %w", err)
	}
	m, ok := <-sp.replies
	if !ok {
		forget()
		return nil, errors.New("sandbox: the spawner has ended")
	}
	if m.reply.ID != req.ID || m.reply.Err != "" || m.reply.Pid <= 0 || m.fd < 0 {
		if m.fd >= 0 {
			unix.Close(m.fd)
		}
		forget()
		if m.reply.Err != "" {
			return nil, fmt.Errorf("sandbox: start %s: %s", cmd.Path, m.reply.Err)
		}
		return nil, fmt.Errorf("sandbox: the spawner answered request %d with %+v", req.ID, m.reply)
	}
	p.Pid, p.pidfd = m.reply.Pid, os.NewFile(uintptr(m.fd), "pidfd")
	return p, nil
}

// Done is closed once the spawner has ended (then Start fails).
func (sp *Spawner) Done() <-chan struct{} { return sp.done }

// Close ends the spawner and waits for it; the processes it started get their parent-death
// signal.
func (sp *Spawner) Close() error {
	// The reader is blocked in recvmsg on the descriptor: shutting the socket down wakes it
	// (and tells the spawner to end); the descriptor is closed once nothing uses it.
	_ = unix.Shutdown(int(sp.sock.Fd()), unix.SHUT_RDWR)
	<-sp.done
	sp.mu.Lock() // no request under way
	sp.sock.Close()
	sp.mu.Unlock()
	_ = sp.proc.Kill()
	<-sp.waited
	return nil
}

// Exited is closed once the process has exited (or the spawner has ended).
func (p *Spawned) Exited() <-chan struct{} { return p.exited }

// Status is the process's wait status once it has exited (ok false before, or when the spawner
// ended first).
func (p *Spawned) Status() (st syscall.WaitStatus, ok bool) {
	select {
	case <-p.exited:
		return p.status, p.err == nil
	default:
		return 0, false
	}
}

// Wait waits for the process to exit and returns its wait status; the error says the spawner
// ended first (the status is then unknown).
func (p *Spawned) Wait() (syscall.WaitStatus, error) {
	<-p.exited
	p.mu.Lock()
	if p.pidfd != nil {
		p.pidfd.Close()
		p.pidfd = nil
	}
	p.mu.Unlock()
	return p.status, p.err
}

// Signal sends sig to the process through its pidfd, so it cannot reach another process that
// got its pid after it was reaped; a process that has exited is not an error.
func (p *Spawned) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return nil
	default:
	}
	if p.pidfd == nil {
		return nil // Wait has closed it: the process has exited
	}
	err := unix.PidfdSendSignal(int(p.pidfd.Fd()), sig, nil, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %d: %w", int(sig), err)
	}
	return nil
}

// recvMsg reads one message and the descriptors attached to it (close-on-exec). A message
// whose descriptors did not fit oob is an error, its descriptors closed.
func recvMsg(fd int, buf, oob []byte) ([]byte, []int, error) {
	n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, nil, err
	}
	var fds []int
	if oobn > 0 {
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, c := range cmsgs {
				if r, err := unix.ParseUnixRights(&c); err == nil {
					fds = append(fds, r...)
				}
			}
		}
	}
	switch {
	case n == 0 && oobn == 0:
		return nil, nil, errors.New("closed")
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		closeFDs(fds)
		return nil, nil, errors.New("message truncated")
	}
	return buf[:n], fds, nil
}

// closeFDs closes descriptors received with a message.
func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
