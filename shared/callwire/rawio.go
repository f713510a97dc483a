package callwire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
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
	// spin is how long the next read that finds nothing tries again before it waits in the
	// netpoller (see spinBudget); the first such read uses it up. The reader sets it.
	spin time.Duration
	// stopSpin ends a spin at once: set by whatever would end a wait in the netpoller (the
	// Conn's Close, an interrupted read's deadline), so that a spinning read sees it as soon.
	stopSpin atomic.Bool
	// polls counts the reads made while spinning that found nothing, and parks the waits in
	// the netpoller (tests see from them whether a read found its bytes while it spun).
	polls, parks atomic.Int64

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
	var spinUntil time.Time
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
			if r.spin > 0 {
				if spinUntil.IsZero() {
					spinUntil = time.Now().Add(r.spin)
				}
				if !r.stopSpin.Load() && time.Now().Before(spinUntil) {
					r.polls.Add(1)
					runtime.Gosched() // (the process's other goroutines run meanwhile)
					continue
				}
				r.spin = 0
			}
			r.parks.Add(1)
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

// spinBudget is how long a read that is about to wait for an answer known to come soon first
// polls the pipe, rather than wait in Go's netpoller at once: the host's Invoke for the shim's
// answer while the guest runs (HostEnd.readHeld), and a shim for the host's next call just after
// it answered one (ShimEnd.read: calls come in bursts, an event after an event).
//
// A thread that waits in the netpoller lets its CPU go idle, and on a virtual machine waking an
// idle CPU is dear: the writer's write(2) pays for the wake-up (an inter-processor interrupt
// through the hypervisor, ~13 µs of its CPU measured on the 2-vCPU VM the benchmarks run on) and
// the woken thread starts ~10 µs later at the median, ~130 µs at the 99th percentile. Measured in
// BenchmarkExportCall, a call whose two sides had both gone to sleep cost 2-3× one whose sides
// were still awake, and which of the two a call was decided most of the benchmark's spread. While
// a side polls, its CPU stays busy and the other side's write finds it awake.
//
// The price is CPU: at most spinBudget of it per wait that spins, for an answer that comes later
// than that (a long export call, a guest that computes between host calls), and the process's
// other goroutines run between polls. A read waits in the netpoller, as any other, after the
// budget, or at once when the connection is closed or the read interrupted (stopSpin).
const spinBudget = 50 * time.Microsecond
