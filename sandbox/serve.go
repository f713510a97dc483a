package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox/internal/statusline"
)

// The helper's side of a Pool (serve mode): set up once, then run one program after another,
// each launched by a request on the status socket (launchRequest, with its stdio as SCM_RIGHTS).
// Per program it reports "started PID" (or "error exec ERRNO MESSAGE"), and once the program has
// exited and its tree is gone "exit CODE SIGNAL", with " last" when the helper cannot clean up
// for another program and ends. EOF on the socket ends it.

// maxLaunchBytes bounds a launch request: the program's arguments and environment.
const maxLaunchBytes = 16 << 20

// serve runs programs until the host closes the socket. It needs a pid namespace: killing
// everything in it but the helper is how a program's leftovers are ended.
func (h *helper) serve() {
	if !h.spec.PIDNS || os.Getpid() != 1 || h.status == nil {
		h.fail(true, "serve: a warm helper needs its own pid namespace and a status socket", nil)
	}
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) // as forkAndReap says
	h.report(statusline.Line{Kind: statusline.Ready})
	for {
		req, fds, err := readLaunch(h.status)
		if err == io.EOF {
			helperExit(0)
		}
		if err != nil {
			h.fail(true, "serve: "+err.Error(), err)
		}
		h.env = req.Env
		h.setTmpEnv()
		pid, err := syscall.ForkExec(req.Path, req.Argv, &syscall.ProcAttr{
			Dir: req.Dir, Env: h.env, Files: []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])},
			Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		})
		for _, fd := range fds {
			unix.Close(fd) // only the program may hold them, or the host never sees EOF
		}
		if err != nil {
			errno, _ := err.(syscall.Errno)
			h.report(statusline.Line{Kind: statusline.Error, Errno: int(errno), Msg: fmt.Sprintf("exec: %q: %v", req.Path, err)})
			continue
		}
		h.report(statusline.Line{Kind: statusline.Started, PID: pid})
		exit := reapUntil(pid)
		if err := h.cleanUp(); err != nil {
			h.reportExit(exit, true)
			fmt.Fprintf(os.Stderr, "astrid sandbox: cannot reuse the helper: %v\n", err)
			helperExit(0)
		}
		h.reportExit(exit, false)
	}
}

// reapUntil reaps orphans until the program pid exits, and returns how it ended.
func reapUntil(pid int) Exit {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return Exit{Code: -1}
		}
		if wpid == pid {
			return exitOf(ws)
		}
	}
}

// cleanUp ends everything the last program left in the pid namespace, reaps it, and empties the
// private /tmp and /dev/shm, so the next program finds what a fresh helper would give it.
func (h *helper) cleanUp() error {
	// As the namespace's init, kill(-1) reaches every process in it but the helper.
	if err := syscall.Kill(-1, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill the leftovers: %w", err)
	}
	for {
		_, err := syscall.Wait4(-1, nil, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.ECHILD {
			break
		}
		if err != nil {
			return fmt.Errorf("reap the leftovers: %w", err)
		}
	}
	var dirs []string
	if h.spec.PrivateTmp != "" {
		dirs = append(dirs, h.tmpDir())
	}
	if h.spec.MountNS && h.privateShm {
		dirs = append(dirs, "/dev/shm")
	}
	for _, dir := range dirs {
		if err := emptyDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// emptyDir removes everything in dir but the mount points the sandbox put there (the kept
// paths a private /tmp covers, such as a workspace under the host's /tmp) and the directories
// leading to them: it never crosses into a mount.
func emptyDir(dir string) error {
	if _, err := removeBelow(dir); err != nil {
		return fmt.Errorf("empty %s: %w", dir, err)
	}
	return nil
}

// removeBelow removes what dir holds, except mounts, and reports whether it kept anything.
func removeBelow(dir string) (kept bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err != nil {
			return false, err
		}
		if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			return false, errors.New("this kernel does not say which directories are mount points")
		}
		if stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
			kept = true
			continue
		}
		if !e.IsDir() {
			if err := unix.Unlink(path); err != nil {
				return false, err
			}
			continue
		}
		// A directory the program made unreadable or unwritable is the helper's to open again.
		_ = unix.Chmod(path, 0o700)
		sub, err := removeBelow(path)
		if err != nil {
			return false, err
		}
		if sub {
			kept = true
			continue
		}
		if err := unix.Rmdir(path); err != nil {
			return false, err
		}
	}
	return kept, nil
}

// readLaunch reads one launch request and the descriptors that come with it. io.EOF means the
// host is done with the helper.
func readLaunch(ctl *os.File) (launchRequest, []int, error) {
	var req launchRequest
	var hdr [4]byte
	oob := make([]byte, unix.CmsgSpace(3*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(ctl.Fd()), hdr[:], oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return req, nil, err
	}
	if n == 0 {
		return req, nil, io.EOF
	}
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range cmsgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	fail := func(err error) (launchRequest, []int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return req, nil, err
	}
	if _, err := io.ReadFull(ctl, hdr[n:]); err != nil {
		return fail(err)
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	if size > maxLaunchBytes {
		return fail(fmt.Errorf("launch of %d bytes, more than %d", size, maxLaunchBytes))
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(ctl, body); err != nil {
		return fail(err)
	}
	if len(fds) != 3 {
		return fail(fmt.Errorf("launch came with %d descriptors, want 3", len(fds)))
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(fmt.Errorf("launch: %w", err))
	}
	return req, fds, nil
}
