package shared

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Compiled code reaches a shim as a file descriptor, never as a path: the host checks a cached
// artefact and copies exactly the bytes it checked into a sealed memfd (no write, no resize, ever),
// and only then hands the shim that memfd. The shim has no access to the module cache, and nobody
// can change what it reads between the host's check and its use.
//
// The kernel's artefact (small, and needed as the shim starts) is inherited at start
// (exec.Cmd.ExtraFiles). The capsule's module (megabytes: checking it costs the host about as
// much as a millisecond a megabyte) is checked while the shim starts, and sent once checked over
// a socket pair whose other end the shim inherited (SCM_RIGHTS): the shim holds no descriptor of
// it before the check has passed.

// Environment variables naming the descriptors a shim inherits.
const (
	// EnvShimKernelFD is the descriptor of the shim's kernel module compiled by the same shim
	// build, if the host has it cached; the shim compiles the kernel otherwise (see
	// InfoResponse.kernel_artefact).
	EnvShimKernelFD = "ASTRID_SHIM_KERNEL_FD"
	// EnvShimArtefactSocket is the descriptor of the shim's end of the socket pair on which the
	// host sends the capsule's compiled module once it has checked it (SendArtefact), or which
	// it closes without sending when it has no good one: then it has the shim Compile the
	// module, and Load uses what the shim compiled.
	EnvShimArtefactSocket = "ASTRID_SHIM_ARTEFACT_SOCKET"
)

// Artefact is compiled code a shim inherited from the host, mapped read-only.
type Artefact struct {
	// Bytes are the artefact's bytes; they are valid until Close.
	Bytes []byte
	// Path names the sealed descriptor in /proc ("/proc/self/fd/N"), or is empty when /proc does
	// not show it. Loading the artefact by path lets wasmtime map its code straight from the
	// memfd instead of copying every byte into fresh executable memory (tens of milliseconds
	// for a Go guest). Reopening the memfd through /proc gives the same sealed inode, so what
	// is read is still exactly what the host checked. Valid until Close.
	Path string
	file *os.File
}

// InheritedArtefact maps the artefact whose descriptor the environment variable env names; nil
// when the variable is unset (the host had no artefact to give).
func InheritedArtefact(env string) (*Artefact, error) {
	f, err := inheritedFile(env)
	if f == nil || err != nil {
		return nil, err
	}
	return mapArtefact(f, env)
}

// inheritedFile is the inherited descriptor the environment variable env names; nil when it is
// unset.
func inheritedFile(env string) (*os.File, error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s is %q; want the number of an inherited descriptor (3 or more)", env, v)
	}
	return os.NewFile(uintptr(fd), env), nil
}

// mapArtefact maps the artefact in f (named what in errors), taking f over.
func mapArtefact(f *os.File, what string) (*Artefact, error) {
	fd := int(f.Fd())
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: descriptor %d: %w", what, fd, err)
	}
	if fi.Size() <= 0 {
		f.Close()
		return nil, fmt.Errorf("%s: descriptor %d holds no artefact", what, fd)
	}
	data, err := unix.Mmap(fd, 0, int(fi.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: map descriptor %d: %w", what, fd, err)
	}
	return &Artefact{Bytes: data, Path: procPath(fd, fi), file: f}, nil
}

// ArtefactSocket makes the channel on which the host hands a shim the capsule's checked
// artefact: a connected pair of packet sockets (close-on-exec both), the host's end and the end
// the shim inherits (EnvShimArtefactSocket).
func ArtefactSocket() (hostEnd, shimEnd *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("artefact socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "artefact socket (host)"), os.NewFile(uintptr(fds[1]), "artefact socket (shim)"), nil
}

// SendArtefact sends the checked, sealed artefact art on the host's end of the channel: one
// message of one byte carrying its descriptor. The host then closes its end.
func SendArtefact(sock, art *os.File) error {
	if err := unix.Sendmsg(int(sock.Fd()), []byte{1}, unix.UnixRights(int(art.Fd())), nil, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("send the artefact to the shim: %w", err)
	}
	return nil
}

// artefactSeals are the seals every artefact a shim receives carries: its bytes cannot change.
const artefactSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// InheritedSocket is the shim's end of the artefact channel, which the environment variable
// env names; nil when it is unset.
func InheritedSocket(env string) (*os.File, error) {
	f, err := inheritedFile(env)
	if f == nil || err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		f.Close()
		return nil, fmt.Errorf("%s: descriptor %s is not a socket", env, os.Getenv(env))
	}
	return f, nil
}

// ReceiveArtefact takes the artefact the host sent on the shim's end of the channel: nil when the
// host closed the channel without sending one (it had none). It does not wait: the host sends
// before it asks the shim to load. A message that is not one byte and one descriptor of a sealed
// file is refused.
func ReceiveArtefact(sock *os.File) (*Artefact, error) {
	buf := make([]byte, 2)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, flags, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
	if errors.Is(err, unix.EAGAIN) {
		return nil, errors.New("the host has not sent the artefact yet")
	}
	if err != nil {
		return nil, fmt.Errorf("receive the artefact: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("receive the artefact: %w", err)
		}
		for _, m := range msgs {
			rights, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	if n == 0 && len(fds) == 0 {
		return nil, nil // the host closed the channel: it had no artefact
	}
	if n != 1 || len(fds) != 1 || flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive the artefact: got %d bytes and %d descriptors; want 1 byte and 1 descriptor", n, len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "artefact")
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err != nil || seals&artefactSeals != artefactSeals {
		f.Close()
		return nil, fmt.Errorf("receive the artefact: the descriptor is not a sealed memfd (seals %#x, %v)", seals, err)
	}
	return mapArtefact(f, "the artefact the host sent")
}

// procPath is "/proc/self/fd/N" for descriptor fd if that path resolves to the very inode fd
// refers to (fi), else "" (no /proc in this mount namespace, or not the process's own).
func procPath(fd int, fi os.FileInfo) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	pfi, err := os.Stat(p)
	if err != nil || !os.SameFile(fi, pfi) {
		return ""
	}
	return p
}

// Close unmaps the artefact and closes its descriptor. It is safe on nil and more than once.
func (a *Artefact) Close() {
	if a == nil || a.file == nil {
		return
	}
	_ = unix.Munmap(a.Bytes)
	a.Bytes, a.Path = nil, ""
	a.file.Close()
	a.file = nil
}
