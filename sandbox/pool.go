package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox/internal/statusline"
)

// A Pool keeps warm helpers: helpers that have set the sandbox up once (namespaces, mounts,
// cgroup, rlimits, landlock, seccomp) and then start one program after another. Starting a
// helper costs several times a plain fork and exec (a Go process starting, two namespaces that
// are slow to make); a warm one only forks and execs the program, so a process started from a
// Pool costs about what an unconfined one does.
//
// A warm helper is the init of its pid namespace, runs one program at a time, and when the
// program exits it kills whatever the program left in the namespace, reaps it, and empties the
// private /tmp and /dev/shm before it takes the next one: to a program, a reused helper looks
// like a fresh sandbox, except that the network, IPC and UTS namespaces (all empty of anything
// the program could not make itself) are those of the processes before it in the same Pool.
// A Pool therefore belongs to one trust domain: the host keeps one per capsule instance, whose
// processes share its workspace anyway. Helpers are reused only for the same confinement (the
// Spec without its program, arguments, environment and working directory); a program that was
// killed (Kill) takes its helper down with it.
//
// A Pool needs the pid namespace layer; without it (or under policy Off) its Commands start a
// helper, or the program, per process, as Sandbox.Command does.
type Pool struct {
	sb      *Sandbox
	tmpRoot string
	maxIdle int

	mu     sync.Mutex
	closed bool
	idle   map[string][]*warmHelper // by confinement key, most recently used last
}

// DefaultMaxIdle is how many idle helpers a Pool keeps when NewPool is given 0: a few Go
// processes of some megabytes each.
const DefaultMaxIdle = 4

// NewPool returns a Pool that starts its helpers through s. Each process gets a private tmp
// directory made under tmpRoot ("" = os.TempDir()) and removed when its helper ends; at most
// maxIdle helpers (of any confinement) wait for work (0 = DefaultMaxIdle), more are ended as
// their programs exit. Close ends the idle ones.
func (s *Sandbox) NewPool(tmpRoot string, maxIdle int) *Pool {
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	if tmpRoot == "" {
		tmpRoot = os.TempDir()
	}
	return &Pool{sb: s, tmpRoot: tmpRoot, maxIdle: maxIdle, idle: make(map[string][]*warmHelper)}
}

// errPoolClosed is Start's error after Close.
var errPoolClosed = errors.New("sandbox: the pool is closed")

// Command prepares spec's process, as Sandbox.Command does, to run in a warm helper. spec.Exec
// must be false and spec.PrivateTmp empty: the Pool makes the private tmp. The Cmd's Stdin,
// Stdout and Stderr must be nil (the null device) or *os.File; the caller closes its copies
// after Start (exec.Cmd's pipe methods do not work on it).
func (p *Pool) Command(spec Spec) (*Cmd, error) {
	if spec.Exec {
		return nil, errors.New("sandbox: a pool runs processes in fork mode only")
	}
	if spec.PrivateTmp != "" {
		return nil, errors.New("sandbox: a pool makes the private tmp itself; leave Spec.PrivateTmp empty")
	}
	if spec.Path == "" {
		return nil, errors.New("sandbox: no program to run")
	}
	layers, missing := p.sb.plan(spec)
	if p.sb.policy == Off || !containsLayer(layers, LayerPIDNS) {
		return p.coldCommand(spec)
	}
	_, exposed := hiddenPaths(spec, layers)
	if p.sb.policy == Required {
		if err := refusal(p.sb.support, missing, exposed); err != nil {
			return nil, err
		}
	}
	confinement := spec
	confinement.Path, confinement.Args, confinement.Env, confinement.Dir = "", nil, nil, ""
	key, err := json.Marshal(confinement)
	if err != nil {
		return nil, fmt.Errorf("sandbox: encode the confinement: %w", err)
	}
	cmd := &exec.Cmd{Path: spec.Path, Args: append([]string{spec.Path}, spec.Args...), Dir: spec.Dir,
		Env: append([]string{}, spec.Env...)}
	return &Cmd{Cmd: cmd, Layers: layers, Exposed: exposed, warm: &warmRun{pool: p, key: string(key), spec: spec}}, nil
}

// coldCommand is Command for a Pool that cannot keep helpers: one helper (or none, under policy
// Off) per process, with a private tmp removed when the process is waited for or closed.
func (p *Pool) coldCommand(spec Spec) (*Cmd, error) {
	if p.sb.policy == Off {
		return p.sb.Command(spec) // unconfined: no private tmp either
	}
	tmp, err := p.makeTmp()
	if err != nil {
		return nil, err
	}
	spec.PrivateTmp = tmp
	cmd, err := p.sb.Command(spec)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	cmd.cleanup = func() { os.RemoveAll(tmp) }
	return cmd, nil
}

// makeTmp makes a private tmp directory under the Pool's tmp root.
func (p *Pool) makeTmp() (string, error) {
	tmp, err := os.MkdirTemp(p.tmpRoot, "astrid-process-*")
	if err != nil {
		return "", fmt.Errorf("sandbox: private tmp directory: %w", err)
	}
	return tmp, nil
}

// Close ends the idle helpers and makes every later Start fail. Helpers running a program end
// when it does. It may be called more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	var idle []*warmHelper
	for _, hs := range p.idle {
		idle = append(idle, hs...)
	}
	p.idle = make(map[string][]*warmHelper)
	p.mu.Unlock()
	var errs []error
	for _, h := range idle {
		errs = append(errs, h.retire())
	}
	return errors.Join(errs...)
}

// take returns an idle helper for key, or nil.
func (p *Pool) take(key string) (*warmHelper, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	hs := p.idle[key]
	if len(hs) == 0 {
		return nil, nil
	}
	h := hs[len(hs)-1]
	p.idle[key] = hs[:len(hs)-1]
	return h, nil
}

// put gives a helper whose program has ended back to the pool, or ends it.
func (p *Pool) put(h *warmHelper) {
	p.mu.Lock()
	idle := 0
	for _, hs := range p.idle {
		idle += len(hs)
	}
	if !p.closed && !h.last && idle < p.maxIdle {
		p.idle[h.key] = append(p.idle[h.key], h)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = h.retire()
}

// warmHelper is the host's side of one helper in serve mode.
type warmHelper struct {
	key  string
	cmd  *Cmd     // the helper, started by startHelper; its status pipe is the control socket
	ctl  *os.File // the host's end of the control socket
	tmp  string   // the helper's private tmp directory, on the host
	last bool     // the helper said it ends after this program
}

// startWarm starts a helper in serve mode for spec's confinement and waits until it is ready.
func (p *Pool) startWarm(key string, spec Spec) (*warmHelper, error) {
	tmp, err := p.makeTmp()
	if err != nil {
		return nil, err
	}
	spec.PrivateTmp = tmp
	// The helper's own program slot is unused in serve mode; its environment is empty, and
	// each program gets its own.
	spec.Env, spec.Dir = nil, "/"
	cmd, err := p.sb.helperCommand(spec)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	cmd.status.spec.Serve = true
	h := &warmHelper{key: key, cmd: cmd, tmp: tmp}
	if err := cmd.startHelper(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	h.ctl = cmd.status.r
	return h, nil
}

// retire ends an idle helper (EOF on its control socket ends it), reaps it and removes what it
// held.
func (h *warmHelper) retire() error {
	h.ctl.Close() // the helper reads EOF and exits; closes st.r, so release must not
	h.cmd.status.mu.Lock()
	h.cmd.status.r = nil
	h.cmd.status.mu.Unlock()
	_, err := h.cmd.waitHelper()
	os.RemoveAll(h.tmp)
	return err
}

// kill ends the helper and what it runs, reaps it, removes what it held, and says how the
// helper ended.
func (h *warmHelper) kill() (Exit, error) {
	_ = h.cmd.killTree()
	exit, err := h.cmd.waitHelper()
	os.RemoveAll(h.tmp)
	return exit, err
}

// launchRequest is what the host sends a warm helper for each program, after a 4-byte length
// that carries the program's stdin, stdout and stderr as SCM_RIGHTS.
type launchRequest struct {
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir,omitempty"`
}

// warmRun is the state of a Cmd that runs in a warm helper.
type warmRun struct {
	pool *Pool
	key  string
	spec Spec

	h *warmHelper // from Start

	mu     sync.Mutex
	done   bool // Wait has returned: the helper may run somebody else's program
	killed bool // Kill ended the helper
}

// startWarm runs the program in an idle helper, or in a new one. An idle helper that turns out
// to be gone (killed while idle) is replaced once.
func (c *Cmd) startWarm() error {
	w := c.warm
	files, closeFiles, err := c.stdioFiles()
	if err != nil {
		return err
	}
	defer closeFiles()
	req, err := json.Marshal(launchRequest{Path: c.Path, Argv: c.Args, Env: c.Env, Dir: c.Dir})
	if err != nil {
		return fmt.Errorf("sandbox: encode the launch: %w", err)
	}
	for attempt := 0; ; attempt++ {
		h, err := w.pool.take(w.key)
		if err != nil {
			return err
		}
		fresh := h == nil
		if fresh {
			if h, err = w.pool.startWarm(w.key, w.spec); err != nil {
				return err
			}
		}
		err = h.launch(req, files)
		var startErr *StartError
		switch {
		case err == nil:
			w.h = h
			c.Process = h.cmd.Process
			return nil
		case errors.As(err, &startErr):
			w.pool.put(h) // the program did not start; the helper is still good
			return err
		case fresh || attempt > 0:
			_, _ = h.kill()
			return err
		default:
			_, _ = h.kill() // a stale idle helper: try a new one
		}
	}
}

// launch sends req with files to the helper and reads whether the program started.
func (h *warmHelper) launch(req []byte, files []int) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(req)))
	rights := unix.UnixRights(files...)
	if err := unix.Sendmsg(int(h.ctl.Fd()), hdr[:], rights, nil, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("sandbox: send the launch to the helper: %w", err)
	}
	if _, err := h.ctl.Write(req); err != nil {
		return fmt.Errorf("sandbox: send the launch to the helper: %w", err)
	}
	line, err := h.cmd.status.br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("sandbox: the helper ended before starting the program: %w", err)
	}
	l, err := statusline.Parse(line)
	switch {
	case err != nil:
		return fmt.Errorf("sandbox: %w", err)
	case l.Kind == statusline.Started:
		return nil
	case l.Kind == statusline.Error:
		return startError(l)
	}
	return fmt.Errorf("sandbox: the helper said %q", strings.TrimSpace(line))
}

// stdioFiles returns the descriptors of the program's stdin, stdout and stderr: the Cmd's files,
// or the null device for those left nil, which the returned func closes.
func (c *Cmd) stdioFiles() ([]int, func(), error) {
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	var fds []int
	for i, s := range []any{c.Stdin, c.Stdout, c.Stderr} {
		var f *os.File
		switch s := s.(type) {
		case nil:
			var err error
			if f, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("sandbox: %w", err)
			}
			opened = append(opened, f)
		case *os.File:
			f = s
		default:
			closeAll()
			return nil, nil, fmt.Errorf("sandbox: stdio %d of a pooled process must be an *os.File or nil, not %T", i, s)
		}
		fds = append(fds, int(f.Fd()))
	}
	return fds, closeAll, nil
}

// waitWarm waits for the helper's word that the program has exited and its tree is gone, then
// gives the helper back to the pool. A helper that died instead (Kill) is reaped and its exit
// status is the result.
func (c *Cmd) waitWarm() (Exit, error) {
	w := c.warm
	if w.h == nil {
		return Exit{}, errors.New("sandbox: wait: the process is not started")
	}
	line, err := w.h.cmd.status.br.ReadString('\n')
	exit, ok := Exit{}, false
	if err == nil {
		if l, perr := statusline.Parse(line); perr == nil && l.Kind == statusline.Exit {
			exit, w.h.last, ok = exitOfLine(l), l.Last, true
		}
	}
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return Exit{}, errors.New("sandbox: wait: already waited for")
	}
	w.done = true
	killed := w.killed
	w.mu.Unlock()
	if ok && !killed {
		w.pool.put(w.h)
		return exit, nil
	}
	// The helper died (killed, or its setup of the next run failed): it reports nothing more.
	hexit, werr := w.h.kill()
	switch {
	case ok:
		return exit, nil
	case werr != nil:
		return Exit{}, werr
	}
	return hexit, nil
}

// signalWarm sends sig to the helper's process group, which the program is in, unless the
// program has been waited for (the helper may then be somebody else's).
func (c *Cmd) signalWarm(sig syscall.Signal) error {
	w := c.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h == nil {
		return errors.New("signal: the process is not started")
	}
	if w.done {
		return fmt.Errorf("signal: %w", ErrExited)
	}
	if err := syscall.Kill(-w.h.cmd.Process.Pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal: %w", ErrExited)
		}
		return fmt.Errorf("signal %d: %w", int(sig), err)
	}
	return nil
}

// killWarm ends the program's tree by ending its helper; Wait then reaps the helper.
func (c *Cmd) killWarm() error {
	w := c.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h == nil || w.done {
		return nil
	}
	w.killed = true
	return w.h.cmd.killTree()
}
