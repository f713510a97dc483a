package callwire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The connection's reads and writes are made with raw system calls (no entersyscall): the pipes
// are non-blocking, so each returns at once, and a read that finds nothing waits in the netpoller
// as before (RawConn.Read). A system call made the ordinary way tells the runtime it may block,
// and when every P of the process was idle (a host waiting for its shims between two messages)
// the runtime then wakes its sysmon thread, which sleeps while nothing runs: one thread wake-up
// more in every publish→recv hop, measured as the largest part of the host's own wake-ups
// (runtime.entersyscallWakeSysmon from the reader's read, in perf's sched_wakeup call chains).

// sysReader reads a non-blocking pipe with raw read(2) calls, waiting in Go's netpoller when
// nothing is there (and so honouring the connection's read deadline and its Close).
//
// A Read allocates nothing: the function handed to RawConn.Read escapes (an interface's
// method), so a closure made per Read would be garbage each time; read is bound once instead,
// with the read's buffer and result in the reader. An idle shim reads only the host's pings, and
// a shim that allocates nothing never has garbage to collect (see shim.Server.ping). One
// goroutine reads at a time (the bufio.Reader above it is not shared either).
type sysReader struct {
	rc syscall.RawConn
	fn func(fd uintptr) bool // read, bound once

	// noWait makes a Read that finds nothing return errWouldBlock rather than wait (set by the
	// reader, Conn.readFrameNoWait, around its reads).
	noWait bool

	// The Read in progress.
	p   []byte
	n   int
	err error
}

func newSysReader(rc syscall.RawConn) *sysReader {
	r := &sysReader{rc: rc}
	r.fn = r.read
	return r
}

func (r *sysReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.fn)
	n, rerr := r.n, r.err
	r.p, r.err = nil, nil
	switch {
	case err != nil:
		return 0, waitError(err)
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the function RawConn.Read calls with the descriptor: one raw read(2) into r.p.
func (r *sysReader) read(fd uintptr) bool {
	for {
		m, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if r.noWait {
				r.err = errWouldBlock
				return true
			}
			return false // wait in the netpoller, then try again
		case 0:
			r.n, r.err = int(m), nil
		default:
			r.err = os.NewSyscallError("read", e)
		}
		return true
	}
}

// errWouldBlock is what a read returns that would have waited (Conn.readFrameNoWait).
var errWouldBlock = errors.New("would block")

// waitError is the error a Read or Write of the connection returns when RawConn's wait for its
// descriptor failed: a deadline's (os.ErrDeadlineExceeded, which ReadFrameContext looks for) as it
// is; any other means the descriptor was closed under the wait (internal/poll's "use of closed
// file", which os.File's own Read turns into os.ErrClosed), reported as net.ErrClosed, the
// connection's one error for its own close, which its readers check for.
func waitError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w (%w)", net.ErrClosed, err)
}

// rawWritev writes bufs to fd with one raw writev(2) (no entersyscall; fd is non-blocking):
// the bytes written, or EAGAIN when the pipe takes none now.
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

// sysWriter writes all of a list of buffers to the pipe with raw writev(2) calls, waiting in
// the netpoller while the pipe is full (RawConn.Write). Like sysReader it allocates nothing:
// write is bound once and the write in progress kept in the writer, so one goroutine writes
// with it at a time (the Conn's write lock).
type sysWriter struct {
	rc syscall.RawConn
	fn func(fd uintptr) bool // write, bound once

	// The write in progress.
	bufs [][]byte
	err  error
}

func newSysWriter(rc syscall.RawConn) *sysWriter {
	w := &sysWriter{rc: rc}
	w.fn = w.write
	return w
}

// writeAll writes all of bufs; bufs' slice headers are consumed.
func (w *sysWriter) writeAll(bufs [][]byte) error {
	w.bufs, w.err = bufs, nil
	err := w.rc.Write(w.fn)
	werr := w.err
	w.bufs, w.err = nil, nil
	if err != nil {
		return waitError(err)
	}
	if werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	return nil
}

// write is the function RawConn.Write calls with the descriptor.
func (w *sysWriter) write(fd uintptr) bool {
	for len(w.bufs) > 0 {
		n, e := rawWritev(fd, w.bufs)
		switch {
		case errors.Is(e, unix.EINTR):
			continue
		case errors.Is(e, unix.EAGAIN):
			return false // wait until the pipe takes more
		case e != nil:
			w.err = os.NewSyscallError("writev", e)
			return true
		}
		w.bufs = consume(w.bufs, n)
	}
	return true
}
