package callwire

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The connection's reads and writes are made with raw system calls (no entersyscall): the socket
// is non-blocking, so each returns at once, and a read that finds nothing waits in the netpoller
// as before (RawConn.Read). A system call made the ordinary way tells the runtime it may block,
// and when every P of the process was idle (a host waiting for its shims between two messages)
// the runtime then wakes its sysmon thread, which sleeps while nothing runs: one thread wake-up
// more in every publish→recv hop, measured as the largest part of the host's own wake-ups
// (runtime.entersyscallWakeSysmon from the reader's read, in perf's sched_wakeup call chains).

// sysReader reads a non-blocking socket with raw read(2) calls, waiting in Go's netpoller when
// nothing is there (and so honouring the connection's read deadline and its Close).
type sysReader struct{ rc syscall.RawConn }

func (r sysReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait in the netpoller, then try again
			case 0:
				n, rerr = int(m), nil
			default:
				rerr = os.NewSyscallError("read", e)
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawWritev writes bufs to fd with one raw writev(2) (no entersyscall; fd is non-blocking):
// the bytes written, or EAGAIN when the socket takes none now.
func rawWritev(fd uintptr, bufs [][]byte) (int, error) {
	var iov [8]unix.Iovec
	vs := iov[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(vs) == len(iov) {
			break // the rest goes with the next call
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&vs[0])), uintptr(len(vs)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// consume drops the first n bytes of bufs and returns the rest (its first buffer cut where the
// bytes written stopped).
func consume(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n < len(bufs[0]) {
			bufs[0] = bufs[0][n:]
			return bufs
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	for len(bufs) > 0 && len(bufs[0]) == 0 {
		bufs = bufs[1:]
	}
	return bufs
}

// sysWrite writes all of bufs to the socket with raw writev(2) calls, waiting in the netpoller
// while the socket is full (RawConn.Write). bufs' slice headers are consumed.
func sysWrite(rc syscall.RawConn, bufs [][]byte) error {
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			n, e := rawWritev(fd, bufs)
			switch {
			case errors.Is(e, unix.EINTR):
				continue
			case errors.Is(e, unix.EAGAIN):
				return false // wait until the socket takes more
			case e != nil:
				werr = os.NewSyscallError("writev", e)
				return true
			}
			bufs = consume(bufs, n)
		}
		return true
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	return nil
}
