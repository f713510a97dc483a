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

// spawnMain is the spawner (see Spawner): it starts the processes the host asks for on the
// socket pair at spawnFD, one request at a time from this locked thread (their parent-death
// signal belongs to the thread that forked them), answers each with the pid and a pidfd, and
// reports each exit. When the host's end closes it exits; the processes still running get their
// parent-death signal.
func spawnMain() {
	buf := make([]byte, maxSpawnMessage)
	oob := make([]byte, unix.CmsgSpace(4*maxSpawnFiles))
	var smu sync.Mutex // one message at a time on the socket
	send := func(r spawnReply, fd int) {
		data, err := json.Marshal(r)
		if err != nil {
			return
		}
		var rights []byte
		if fd >= 0 {
			rights = unix.UnixRights(fd)
		}
		smu.Lock()
		defer smu.Unlock()
		_ = unix.Sendmsg(spawnFD, data, rights, nil, 0)
	}
	net := openSharedNet()
	send(spawnReply{SharedNet: net != nil}, -1)
	for {
		data, fds, err := recvMsg(spawnFD, buf, oob)
		if err != nil {
			break // the host closed its end, or is gone
		}
		var req spawnRequest
		if err := json.Unmarshal(data, &req); err != nil || req.Files != len(fds) || len(fds) < 3 {
			closeFDs(fds)
			send(spawnReply{ID: req.ID, Err: fmt.Sprintf("bad request (%d descriptors)", len(fds))}, -1)
			continue
		}
		cmd, pidfd, err := spawnOne(req, fds, net)
		if err != nil {
			send(spawnReply{ID: req.ID, Err: err.Error()}, -1)
			continue
		}
		send(spawnReply{ID: req.ID, Pid: cmd.Process.Pid}, pidfd)
		go func() {
			awaitExit(pidfd)
			_ = cmd.Wait() // at once, once awaitExit has seen the exit
			send(spawnReply{ID: req.ID, Exited: true, Status: uint32(cmd.ProcessState.Sys().(syscall.WaitStatus))}, -1)
		}()
	}
	helperExit(0)
}

// spawnOne starts req with the descriptors that came with it (closed here) and returns the
// started command and a pidfd of its process. A request for the shared network namespace is
// forked from inside net (nil: the spawner has none).
func spawnOne(req spawnRequest, fds []int, net *sharedNet) (*exec.Cmd, int, error) {
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", i))
	}
	defer func() {
		for _, f := range files {
			f.Close() // the process has its own copies
		}
	}()
	pidfd := -1
	cmd := &exec.Cmd{
		Path: req.Path, Args: req.Args, Env: req.Env, Dir: req.Dir,
		Stdin: files[0], Stdout: files[1], Stderr: files[2], ExtraFiles: files[3:],
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  req.Cloneflags,
			UidMappings: req.UidMappings,
			GidMappings: req.GidMappings,
			AmbientCaps: req.AmbientCaps,
			Setpgid:     req.Setpgid,
			Pdeathsig:   req.Pdeathsig,
			PidFD:       &pidfd,
		},
	}
	start := cmd.Start
	if req.SharedNet {
		if net == nil || req.Cloneflags&syscall.CLONE_NEWNET != 0 {
			return nil, -1, errors.New("no shared network namespace to start the process in")
		}
		start = func() error { return net.inside(cmd.Start) }
	}
	if err := start(); err != nil {
		return nil, -1, err
	}
	return cmd, pidfd, nil
}

// awaitExit waits until the process of pidfd has exited, and closes pidfd. It waits in the
// netpoller (a pidfd turns readable when its process exits): Cmd.Wait alone blocks in waitid,
// which holds an OS thread for every process running, and a spawner serving fifty shims had
// fifty-odd threads. Should the netpoller refuse the pidfd it returns at once, and Cmd.Wait
// blocks as before.
func awaitExit(pidfd int) {
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Read(func(fd uintptr) bool {
			n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			return n > 0 // not yet (or EINTR): wait until the netpoller says it is readable
		})
	}
}
