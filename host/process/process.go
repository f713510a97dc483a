package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/astrid-go/astrid/sandbox"
)

// launch is what start needs to run one process.
type launch struct {
	spec      sandbox.Spec
	stdout    io.Writer // where the readers put the output: a ring or a capture
	stderr    io.Writer
	readSize  int
	stdinPipe bool   // give the process a stdin pipe (else the null device)
	feed      []byte // with stdinPipe: written by a feeder goroutine, then stdin is closed
	failText  string // the prefix of a failure to start, as upstream words it
	principal string
}

// process is one started process and the goroutines that serve it.
type process struct {
	principal string
	cmd       *sandbox.Cmd
	pid       int
	layers    []sandbox.Layer
	outR      *os.File // the host's ends of the output pipes
	errR      *os.File
	stdin     *stdinPipe // nil when stdin is the null device

	io   sync.WaitGroup // the readers and the stdin feeder
	done chan struct{}  // closed once reaped, its output read and its tmp emptied
	exit sandbox.Exit   // how it ended; read only after done
}

// errClosedWhileStarting is start's error when Close ran while the process was being started:
// it was started, then killed, as if it had been running when Close came.
var errClosedWhileStarting = errors.New("closed while starting")

// start starts l's process with a private tmp directory, its readers and its supervisor, and
// registers it so Close kills it.
func (m *Manager) start(l launch) (*process, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, m.closedError()
	}
	m.supervisors.Add(1) // before Close can Wait: closed is false under the same lock
	m.mu.Unlock()
	p, err := m.startProcess(l)
	if err != nil {
		m.supervisors.Done()
		return nil, err
	}

	m.mu.Lock()
	closed := m.closed
	if !closed {
		m.live[p] = struct{}{}
	}
	m.mu.Unlock()
	go p.supervise(m)
	if closed { // Close ran while this process was starting and could not see it
		_ = p.killTree()
		<-p.done
		return nil, errClosedWhileStarting
	}
	return p, nil
}

// startProcess makes the tmp directory and the pipes and starts the process; on failure it
// leaves nothing behind.
func (m *Manager) startProcess(l launch) (p *process, err error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", l.failText, fmt.Sprintf(format, args...))
	}
	if m.cfg.Sandbox == nil {
		return nil, fail("no sandbox is configured")
	}
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()
	closeLater := func(f *os.File) { cleanups = append(cleanups, func() { f.Close() }) }

	if err := os.MkdirAll(m.tmpRoot(), 0o700); err != nil {
		return nil, fail("create the tmp root: %v", err)
	}
	cmd, err := m.pool().Command(l.spec)
	if err != nil {
		return nil, fail("%v", err)
	}
	unstarted := cmd
	cleanups = append(cleanups, func() { _ = unstarted.Close() }) // its cgroup and tmp, if it never ran
	if len(cmd.Exposed) > 0 {
		m.exposedOnce.Do(func() {
			m.log.Warn("the sandbox cannot hide the host's directories from this capsule's processes (no mount namespace): they can read and write them; run the host with its state directory outside the workspace (--state DIR)",
				"capsule", m.cfg.CapsuleID, "exposed", cmd.Exposed, "workspace", m.cfg.Workspace)
		})
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fail("stdout pipe: %v", err)
	}
	closeLater(outR)
	defer outW.Close() // the child's end: only the child may hold it, or EOF never comes
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, fail("stderr pipe: %v", err)
	}
	closeLater(errR)
	defer errW.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	var stdin *stdinPipe
	if l.stdinPipe {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, fail("stdin pipe: %v", err)
		}
		closeLater(inW)
		defer inR.Close()
		cmd.Stdin = inR
		stdin = &stdinPipe{f: inW, file: inW}
	}
	if err := cmd.Start(); err != nil {
		return nil, fail("%v", err)
	}

	p = &process{
		principal: l.principal,
		cmd:       cmd,
		pid:       cmd.Process.Pid,
		layers:    cmd.Layers,
		outR:      outR,
		errR:      errR,
		stdin:     stdin,
		done:      make(chan struct{}),
	}
	p.io.Add(2)
	go copyOutput(&p.io, outR, l.stdout, l.readSize)
	go copyOutput(&p.io, errR, l.stderr, l.readSize)
	if l.feed != nil {
		p.io.Add(1)
		go func() {
			defer p.io.Done()
			_, _ = stdin.write(context.Background(), l.feed) // a child that stops reading is not an error
			stdin.close()
		}()
	}
	return p, nil
}

// copyOutput copies a pipe into w until EOF, or until the pipe fails (its read deadline after
// the tree was killed, or its close).
func copyOutput(wg *sync.WaitGroup, r *os.File, w io.Writer, size int) {
	defer wg.Done()
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// supervise waits for the process to exit (when sandbox.Cmd.Wait returns, what it left in its
// tree is killed and reaped too), lets the readers finish, and cleans up. It is the process's
// only waiter.
func (p *process) supervise(m *Manager) {
	defer m.supervisors.Done()
	exit, err := p.cmd.Wait()
	if err != nil {
		m.log.Error("waiting for a process", "pid", p.pid, "error", err)
		exit = sandbox.Exit{Code: -1}
	}
	if p.stdin != nil {
		p.stdin.file.Close() // ends a blocked write or the feeder
	}
	deadline := time.Now().Add(DrainGrace)
	_ = p.outR.SetReadDeadline(deadline)
	_ = p.errR.SetReadDeadline(deadline)
	p.io.Wait()
	p.outR.Close()
	p.errR.Close()
	p.exit = exit
	m.forget(p)
	close(p.done)
}

// killTree kills the process's whole tree; after the reap it does nothing.
func (p *process) killTree() error {
	return p.cmd.Kill()
}

// errExited is the error of a signal or a stdin write to a process that has ended.
var errExited = sandbox.ErrExited

// signal sends sig to the program's process group; after the reap it returns errExited.
func (p *process) signal(sig syscall.Signal) error {
	return p.cmd.Signal(sig)
}

// finished reports whether the process has been reaped and its output read.
func (p *process) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stdinPipe is the host's end of a process's stdin.
type stdinPipe struct {
	mu   sync.Mutex // serialises writes and the guest's close
	f    *os.File   // nil once closed by request
	file *os.File   // the same file, closed by the supervisor without mu: a write may hold it
}

// errStdinClosed is returned by write after stdin was closed.
var errStdinClosed = errors.New("stdin is closed")

// write writes all of data unless ctx is cancelled, the pipe breaks or it is closed; it
// returns how much was written.
func (s *stdinPipe) write(ctx context.Context, data []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(data) == 0 {
		return 0, nil // nothing to write: not an error on a closed stdin, so close is idempotent
	}
	if s.f == nil {
		return 0, errStdinClosed
	}
	f := s.f
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = f.SetWriteDeadline(time.Unix(1, 0)) // in the past: the blocked write returns
	})
	n, err := f.Write(data)
	if !stop() {
		<-fired // the deadline is set; clear it after, not before
		if err != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
	}
	_ = f.SetWriteDeadline(time.Time{})
	if errors.Is(err, os.ErrClosed) {
		return n, errExited
	}
	return n, err
}

// close closes stdin, so the process reads EOF; closing it again does nothing.
func (s *stdinPipe) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
