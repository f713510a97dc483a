package callwire

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// waiter waits for a Conn to become readable on the calling OS thread, in poll(2), instead of
// parking the goroutine in Go's network poller. A guest's host call runs in a callback from
// wasm, whose goroutine is locked to its thread: parked in the poller, it would cost a second
// thread to wait and two thread wake-ups to resume; blocked in poll(2) the kernel wakes that
// one thread when the answer arrives, as a plain blocking read would.
type waiter struct {
	sock syscall.RawConn

	once sync.Once
	wake *os.File // an eventfd: written to interrupt the wait (a context ended, the Conn closed)
	err  error
}

func newWaiter(nc any) *waiter {
	rc := rawConn(nc)
	if rc == nil {
		return nil
	}
	return &waiter{sock: rc}
}

func (w *waiter) init() error {
	w.once.Do(func() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			w.err = fmt.Errorf("eventfd: %w", err)
			return
		}
		w.wake = os.NewFile(uintptr(fd), "call connection wake-up")
	})
	return w.err
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

// wait blocks the calling thread until the socket is readable (or has ended) or ctx ends.
func (w *waiter) wait(ctx context.Context) error {
	if err := w.init(); err != nil {
		return err
	}
	wake, err := w.wake.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, w.interrupt)
	defer stop()
	var perr error
	cerr := w.sock.Control(func(sfd uintptr) {
		cerr := wake.Control(func(efd uintptr) {
			fds := []unix.PollFd{{Fd: int32(sfd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
			for {
				_, err := unix.Poll(fds, -1)
				if err != unix.EINTR {
					perr = err
					break
				}
			}
			if fds[1].Revents != 0 {
				var b [8]byte
				_, _ = unix.Read(int(efd), b[:])
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
