package callwire

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The call connection is two pipes, one each way, rather than one unix socket pair. A socket
// wakes its writer's side whenever the reader takes data out of it: the bytes were charged to the
// writer's socket, and freeing them signals it writable (sock_wfree → unix_write_space), and Go
// registers every descriptor in its netpoller edge-triggered for writing as well as reading. So
// each frame the host wrote woke the host's idle netpoller thread again when the shim read it, a
// wake-up of an idle CPU that found nothing to do, paid for on the publish→recv path by the
// shim's read (~9 µs of the shim's CPU a round trip on the 2-core VM, and the host's wake-up
// besides). A pipe's reader wakes its writer only when the pipe was full. A pipe round trip
// between two Go processes on that VM: p50 4.4 µs against 8–60 µs for a socket pair.
//
// Each pipe's buffer is raised to pipeBytes where the system allows it (fcntl F_SETPIPE_SZ; an
// unprivileged user may not go past /proc/sys/fs/pipe-max-size, nor past its share of
// pipe-user-pages-soft): a frame that does not fit is written in parts as the reader drains it.

// pipeBytes is the buffer each pipe of a call connection asks for: as much as the unix socket
// it replaced held (net.core.wmem_default, 208 KiB, rounded up to a power of two).
const pipeBytes = 256 << 10

// ShimFiles are the shim's ends of a call connection, for the host to hand to the shim
// (exec.Cmd.ExtraFiles, see Attach) and close once the shim has started.
type ShimFiles struct {
	In  *os.File // the shim reads the host's frames from it
	Out *os.File // the shim writes its frames to it
}

// Attach appends the shim's ends to files, the descriptors a child inherits from 3 on, and
// returns them with the environment entry that tells the shim their numbers (EnvShimCallsFD).
func (s ShimFiles) Attach(files []*os.File) ([]*os.File, string) {
	env := fmt.Sprintf("%s=%d,%d", EnvShimCallsFD, 3+len(files), 4+len(files))
	return append(files, s.In, s.Out), env
}

// Close closes both files (the host's copies, once the shim has its own).
func (s ShimFiles) Close() error {
	return errors.Join(s.In.Close(), s.Out.Close())
}

// Pair makes the call connection of a new shim: the host's end, and the shim's ends as files to
// hand to the shim (ShimFiles.Attach), which the host closes once the shim has started. No other
// process can reach either end: the pipes have no name.
func Pair() (hostEnd *Conn, shim ShimFiles, err error) {
	down, err := pipe() // host → shim
	if err != nil {
		return nil, ShimFiles{}, err
	}
	up, err := pipe() // shim → host
	if err != nil {
		closeFDs(down[0], down[1])
		return nil, ShimFiles{}, err
	}
	if err := errors.Join(unix.SetNonblock(up[0], true), unix.SetNonblock(down[1], true)); err != nil {
		closeFDs(down[0], down[1], up[0], up[1])
		return nil, ShimFiles{}, fmt.Errorf("call connection: %w", err)
	}
	c, err := newConn(os.NewFile(uintptr(up[0]), "call connection (host, in)"), os.NewFile(uintptr(down[1]), "call connection (host, out)"))
	if err != nil {
		closeFDs(down[0], down[1], up[0], up[1])
		return nil, ShimFiles{}, err
	}
	return c, ShimFiles{
		In:  os.NewFile(uintptr(down[0]), "call connection (shim, in)"),
		Out: os.NewFile(uintptr(up[1]), "call connection (shim, out)"),
	}, nil
}

// pipe makes one pipe of a call connection, close-on-exec and blocking (the ends are made
// non-blocking where they are wrapped: O_NONBLOCK belongs to each end's open file, so the
// host's and the shim's choices stay apart), its buffer raised to pipeBytes if allowed.
func pipe() ([2]int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return p, fmt.Errorf("call connection: pipe: %w", err)
	}
	// Best effort: a smaller buffer only splits large frames into more writes.
	_, _ = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeBytes)
	return p, nil
}

func closeFDs(fds ...int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// FilesConn wraps the shim's ends of a call connection (inherited descriptors, or ShimFiles in a
// test) as a Conn. in and out stay the caller's to close: the Conn has copies of its own.
func FilesConn(in, out *os.File) (*Conn, error) {
	cin, err := nonblockingCopy(in)
	if err != nil {
		return nil, err
	}
	cout, err := nonblockingCopy(out)
	if err != nil {
		cin.Close()
		return nil, err
	}
	c, err := newConn(cin, cout)
	if err != nil {
		cin.Close()
		cout.Close()
		return nil, err
	}
	return c, nil
}

// nonblockingCopy is a non-blocking, close-on-exec duplicate of f (in Go's netpoller).
func nonblockingCopy(f *os.File) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("call connection %s: %w", f.Name(), err)
	}
	fd := -1
	var derr error
	if err := sc.Control(func(orig uintptr) {
		fd, derr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("call connection %s: %w", f.Name(), err)
	}
	if derr != nil {
		return nil, fmt.Errorf("call connection %s: dup: %w", f.Name(), derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("call connection %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// ShimCallsFDs returns the descriptors of the shim's ends of its call connection, as
// EnvShimCallsFD names them ("IN,OUT", each 3 or more).
func ShimCallsFDs() (in, out int, err error) {
	v, ok := os.LookupEnv(EnvShimCallsFD)
	if !ok {
		return -1, -1, fmt.Errorf("%s is not set: the shim was not started by astrid-host", EnvShimCallsFD)
	}
	a, b, ok := strings.Cut(v, ",")
	in, ierr := strconv.Atoi(a)
	out, oerr := strconv.Atoi(b)
	if !ok || ierr != nil || oerr != nil || in < 3 || out < 3 || in == out {
		return -1, -1, fmt.Errorf("%s=%q: want two different descriptor numbers of 3 or more, \"IN,OUT\"", EnvShimCallsFD, v)
	}
	return in, out, nil
}

// InheritedConn is the shim's end of the call connection whose descriptors the environment
// variable EnvShimCallsFD names, each of which must be a pipe.
func InheritedConn() (*Conn, error) {
	in, out, err := ShimCallsFDs()
	if err != nil {
		return nil, err
	}
	fin, fout := os.NewFile(uintptr(in), "call connection (in)"), os.NewFile(uintptr(out), "call connection (out)")
	defer fin.Close() // FilesConn copies them
	defer fout.Close()
	for fd, f := range map[int]*os.File{in: fin, out: fout} {
		fi, err := f.Stat()
		if err != nil || fi.Mode().Type() != os.ModeNamedPipe {
			return nil, fmt.Errorf("%s: descriptor %d is not a pipe", EnvShimCallsFD, fd)
		}
	}
	return FilesConn(fin, fout)
}
