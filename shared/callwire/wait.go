package callwire

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waiter waits for a Conn to become readable on the calling OS thread, in poll(2), instead of
// parking the goroutine in Go's network poller. A guest's host call runs in a callback from
// wasm, whose goroutine is locked to its thread: parked in the poller, it would cost a second
// thread to wait and two thread wake-ups to resume; blocked in poll(2) the kernel wakes that
// one thread when the answer arrives, as a plain blocking read would.
//
// The first part of a wait, up to keepP, is a raw system call (pollRaw): the thread keeps the
// runtime's P meanwhile. Made the ordinary way (entersyscall), the wait lets the shim's sysmon
// take its only P (GOMAXPROCS=1) back after 20 µs and hand it to another thread, which finds
// nothing to run and waits in the netpoller, to be woken with the guest's thread by the answer's
// frame (the call connection's pipe is registered there); the guest's thread then takes the P back, and
// sysmon, having retaken a P, kept looking every 20 µs: ~4 sleeps and wake-ups of the shim's
// threads per publish→recv hop where one is needed. Meanwhile no other goroutine of the shim
// runs (a health check, a timer, a cancelled context's AfterFunc): they wait at most keepP, or
// until sysmon preempts the P (10 ms without a reschedule: its signal ends the ppoll with EINTR)
// or a stop-the-world signals it the same way; after either the wait goes on as a system call
// the ordinary way, which gives the P up.
type waiter struct {
	fd    syscall.RawConn // the connection's read end
	keepP time.Duration   // how long a wait first keeps the P (pollRaw)

	once   sync.Once
	wake   *os.File        // an eventfd: written to interrupt the wait (a context ended, the Conn closed)
	wakeRC syscall.RawConn // wake's
	err    error

	// The context the last wait watched (its Done channel) and the end of that watch: the next
	// wait under the same context reuses it, so that a guest's host calls, which all run under
	// their export call's context, do not register with it one by one (context.AfterFunc
	// allocates and locks the context's parent). One goroutine waits at a time (the guest's).
	watched     <-chan struct{}
	stopWatched func() bool
	interrupted chan struct{} // closed once the watch's interrupt has run
}

// waitKeepingP is how long a guest's wait for a host call's answer keeps the runtime's P (see
// waiter). It covers the answers that come at once (a host call's round trip is tens of µs) and
// a recv's wait for a message of a busy conversation (a publish→recv round trip between two
// capsules is ~100-300 µs); a longer wait gives the P up. Other goroutines of the shim wait at
// most this long for it (a health check has seconds).
const waitKeepingP = 2 * time.Millisecond

func (w *waiter) init() error {
	w.once.Do(func() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			w.err = fmt.Errorf("eventfd: %w", err)
			return
		}
		w.wake = os.NewFile(uintptr(fd), "call connection wake-up")
		w.wakeRC, w.err = w.wake.SyscallConn()
	})
	return w.err
}

// watch makes ctx's end interrupt the waits (see watched): a new registration only when ctx is
// not the one the last wait watched. A registration that has fired left the eventfd written:
// it is drained, so the next context's first wait does not return at once for nothing.
func (w *waiter) watch(ctx context.Context) {
	done := ctx.Done()
	if done == nil || done == w.watched {
		return
	}
	if w.stopWatched != nil && !w.stopWatched() {
		<-w.interrupted // the old context's interrupt has been started: let it write first
		_ = w.wakeRC.Read(func(efd uintptr) bool {
			drainWake(efd)
			return true
		})
	}
	interrupted := make(chan struct{})
	w.watched, w.interrupted = done, interrupted
	w.stopWatched = context.AfterFunc(ctx, func() {
		w.interrupt()
		close(interrupted)
	})
}

// interrupt wakes a wait in progress (and makes the next one return at once).
func (w *waiter) interrupt() {
	if w.init() != nil {
		return
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	_, _ = w.wake.Write(one)
}

// close interrupts a wait in progress and releases the eventfd (once no wait uses it).
func (w *waiter) close() {
	w.interrupt()
	if w.wake != nil {
		w.wake.Close()
	}
}

// wait blocks the calling thread until the connection's read end is readable (or has ended) or ctx ends.
func (w *waiter) wait(ctx context.Context) error {
	if err := w.init(); err != nil {
		return err
	}
	// An end that came before this wait may have been taken by an earlier one (the eventfd is
	// read when a wait sees it), so it is checked here, and one that comes later writes it.
	w.watch(ctx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errInterrupted, err)
	}
	var perr error
	cerr := w.fd.Control(func(sfd uintptr) {
		cerr := w.wakeRC.Control(func(efd uintptr) {
			fds := []unix.PollFd{{Fd: int32(sfd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
			if !pollRaw(fds, w.keepP) {
				for {
					_, err := unix.Poll(fds, -1)
					if err != unix.EINTR {
						perr = err
						break
					}
				}
			}
			if fds[1].Revents != 0 {
				drainWake(efd)
			}
		})
		if cerr != nil {
			perr = cerr
		}
	})
	if cerr != nil {
		return cerr
	}
	if perr != nil {
		return perr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errInterrupted, err)
	}
	return nil
}

// drainWake reads the eventfd efd back to zero (non-blocking: nothing to read is fine).
func drainWake(efd uintptr) {
	var b [8]byte
	_, _ = unix.Read(int(efd), b[:])
}

// pollRaw waits up to d for an event on fds in ppoll(2), made as a raw system call: the Go
// runtime is not told, so the calling thread keeps its P (the thread sleeps in the kernel; it
// does not spin). It reports whether fds had an event; false when d passed first, or a signal
// (a preemption's) or an error ended the wait: the caller then waits the ordinary way.
func pollRaw(fds []unix.PollFd, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	ts := unix.NsecToTimespec(int64(d))
	n, _, errno := syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return errno == 0 && n > 0
}
