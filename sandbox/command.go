package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox/internal/statusline"
)

// The host's side of a sandboxed process: it plans the layers, starts the helper with the
// namespaces (only a clone can create a pid namespace whose init is the helper), hands it the
// rest of the plan as JSON, and talks with it over a status pipe.

// wireSpec is what the host tells the helper: everything it applies itself, as JSON in one
// argument. The program's path and arguments follow "--" so ps shows what runs.
type wireSpec struct {
	Exec       bool     `json:"exec,omitempty"`
	Network    bool     `json:"network,omitempty"`
	PIDNS      bool     `json:"pidns,omitempty"`
	MountNS    bool     `json:"mountns,omitempty"`
	Landlock   bool     `json:"landlock,omitempty"`
	Seccomp    bool     `json:"seccomp,omitempty"`
	ReadOnly   []string `json:"ro,omitempty"`
	ReadWrite  []string `json:"rw,omitempty"`
	Hidden     []string `json:"hidden,omitempty"`
	PrivateTmp string   `json:"tmp,omitempty"`
	OpenFiles  uint64   `json:"nofile,omitempty"`
	FileSize   uint64   `json:"fsize,omitempty"`
	Cgroups    []string `json:"cgroups,omitempty"`
	// Serve makes the helper a warm one (Pool): after its setup it reports "ready" and runs the
	// programs the host sends on the status socket, one at a time.
	Serve bool `json:"serve,omitempty"`
	// Status is the helper's fd of the status pipe; 0 when nobody listens (a launcher such as
	// go-plugin started the helper), and setup errors then go to stderr only.
	Status int `json:"status,omitempty"`
}

// helperArgIndex is where the JSON spec sits in the helper's argv: helper HelperArg JSON -- ...
const helperArgIndex = 2

// statusPipe is the host's end of the helper's status channel, and the state a helper-started Cmd
// keeps for Wait and Kill.
type statusPipe struct {
	spec wireSpec
	cg   *procCgroup

	r  *os.File      // nil until Start, and for a Cmd a launcher started
	br *bufio.Reader // over r

	mu     sync.Mutex
	reaped bool // Wait has reaped the helper: its pid (and group id) may be reused
}

// requiredLayer reports whether policy Required refuses to start without layer l (netns only
// matters for a process without Network, which plan never asks for).
func requiredLayer(l Layer) bool {
	switch l {
	case LayerUserNS, LayerPIDNS, LayerMountNS, LayerNetNS, LayerLandlock:
		return true
	}
	return false
}

// cloneFlag is the namespace each namespace layer is.
var cloneFlag = map[Layer]uintptr{
	LayerUserNS:  syscall.CLONE_NEWUSER,
	LayerPIDNS:   syscall.CLONE_NEWPID,
	LayerNetNS:   syscall.CLONE_NEWNET,
	LayerIPCNS:   syscall.CLONE_NEWIPC,
	LayerUTSNS:   syscall.CLONE_NEWUTS,
	LayerMountNS: syscall.CLONE_NEWNS,
}

// plan picks the layers spec gets on this machine: the ones it wants that are available, and the
// ones it wants that are missing.
func (s *Sandbox) plan(spec Spec) (layers, missing []Layer) {
	for _, l := range allLayers {
		switch {
		case l == LayerNetNS && spec.Network:
			continue
		case l == LayerCgroup && spec.Cgroup == (CgroupLimits{}):
			continue
		case s.support.Available(l):
			layers = append(layers, l)
		default:
			missing = append(missing, l)
		}
	}
	return layers, missing
}

// refusal is the error of policy Required for the missing layers it cannot do without. exposed
// are the hidden paths the process could reach without them (see hiddenPaths), named so the
// operator knows what relaxing the policy would cost and how to avoid it.
func refusal(s *Support, missing []Layer, exposed []string) error {
	var parts []string
	for _, l := range missing {
		if requiredLayer(l) {
			parts = append(parts, fmt.Sprintf("%s is unavailable (%s)", l, s.Reason(l)))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	msg := fmt.Sprintf("sandbox: %s; %s=best-effort runs without it", strings.Join(parts, "; "), PolicyFlag)
	if len(exposed) > 0 {
		msg += fmt.Sprintf(", but then the process could read and write %s, which lies inside a path it may use and only a mount namespace hides: move it out of those paths (for the state directory: --state DIR)",
			strings.Join(exposed, ", "))
	}
	return errors.New(msg)
}

// hiddenPaths resolves spec's Hidden paths (the mounts cover real paths; a missing one hides
// nothing) and says which of them a process with layers could still reach: without a mount
// namespace, those inside a path it may use, or every one without landlock either.
func hiddenPaths(spec Spec, layers []Layer) (hidden, exposed []string) {
	for _, p := range spec.Hidden {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			hidden = append(hidden, absAll([]string{r})...)
		}
	}
	if containsLayer(layers, LayerMountNS) {
		return hidden, nil
	}
	var allowed []string
	for _, p := range slices.Concat(spec.ReadOnly, spec.ReadWrite, []string{spec.PrivateTmp}) {
		if r, err := filepath.EvalSymlinks(p); err == nil && p != "" {
			allowed = append(allowed, absAll([]string{r})...)
		}
	}
	for _, h := range hidden {
		inside := slices.ContainsFunc(allowed, func(a string) bool { return under(h, a) })
		if inside || !containsLayer(layers, LayerLandlock) {
			exposed = append(exposed, h)
		}
	}
	return hidden, exposed
}

func (s *Sandbox) helperCommand(spec Spec) (*Cmd, error) {
	if !filepath.IsAbs(spec.Path) {
		return nil, fmt.Errorf("sandbox: the program path %q is not absolute", spec.Path)
	}
	if s.helper == "" || !filepath.IsAbs(s.helper) {
		return nil, fmt.Errorf("sandbox: the helper path %q is not absolute", s.helper)
	}
	if s.check != nil {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("sandbox: helper %s: %w", s.helper, err)
		}
	}
	layers, missing := s.plan(spec)
	hidden, exposed := hiddenPaths(spec, layers)
	if s.policy == Required {
		if err := refusal(s.support, missing, exposed); err != nil {
			return nil, err
		}
	}
	has := func(l Layer) bool { return containsLayer(layers, l) }
	w := wireSpec{
		Exec:       spec.Exec,
		Network:    spec.Network,
		PIDNS:      has(LayerPIDNS),
		MountNS:    has(LayerMountNS),
		Landlock:   has(LayerLandlock),
		Seccomp:    has(LayerSeccomp),
		ReadOnly:   absAll(spec.ReadOnly),
		ReadWrite:  absAll(spec.ReadWrite),
		Hidden:     hidden,
		PrivateTmp: spec.PrivateTmp,
		OpenFiles:  spec.Rlimits.OpenFiles,
		FileSize:   spec.Rlimits.FileSize,
	}
	if w.OpenFiles == 0 {
		w.OpenFiles = DefaultOpenFiles
	}
	if w.FileSize == 0 {
		w.FileSize = DefaultFileSize
	}
	var cg *procCgroup
	if has(LayerCgroup) {
		extra := helperPids
		if spec.Exec {
			extra = 0
		}
		var err error
		if cg, err = s.support.cgroup.create(spec.Cgroup, extra); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		w.Cgroups = append([]string(nil), cg.dirs...)
	}
	js, err := json.Marshal(w)
	if err != nil {
		_ = cg.remove()
		return nil, fmt.Errorf("sandbox: encode the spec: %w", err)
	}
	cmd := exec.Command(s.helper, append([]string{HelperArg, string(js), "--", spec.Path}, spec.Args...)...)
	cmd.Env = append([]string{}, spec.Env...) // never nil: nil would be the host's environment
	cmd.Dir = spec.Dir
	attr := ProcessAttr()
	for _, l := range layers {
		attr.Cloneflags |= cloneFlag[l]
	}
	if has(LayerUserNS) {
		identityMap(attr)
	}
	cmd.SysProcAttr = attr
	return &Cmd{Cmd: cmd, Layers: layers, Exposed: exposed, netShareable: netShareable(layers, s.support.LandlockABI()),
		status: &statusPipe{spec: w, cg: cg}}, nil
}

// identityMap puts the process in a user namespace where it keeps its uid and gid. The identity
// map keeps file ownership meaningful: the workspace the process writes is the host user's. It
// grants nothing outside: the helper drops every capability before the program runs.
//
// A process that is not uid 0 in its namespace loses its capabilities at exec, and the helper needs
// CAP_SYS_ADMIN for the mount namespace and CAP_SETPCAP to empty the bounding set: for a host that
// is not root they pass the exec as ambient capabilities, which the helper clears.
func identityMap(attr *syscall.SysProcAttr) {
	uid, gid := os.Getuid(), os.Getgid()
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	attr.GidMappingsEnableSetgroups = false
	if uid != 0 {
		attr.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP}
	}
}

// containsLayer reports whether layers has l.
func containsLayer(layers []Layer, l Layer) bool {
	for _, x := range layers {
		if x == l {
			return true
		}
	}
	return false
}

// absAll cleans paths; the helper opens them after changing its working directory and mounts.
func absAll(paths []string) []string {
	var out []string
	for _, p := range paths {
		if a, err := filepath.Abs(p); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// startHelper starts the helper with a status pipe and waits for its word that the program runs
// (fork mode: "started"; Exec mode: "exec", then the pipe closing on exec), or why it does not.
// A helper stuck in its setup blocks Start until Kill, from another goroutine, ends it.
func (c *Cmd) startHelper() error {
	st := c.status
	r, w, err := statusChannel(st.spec.Serve)
	if err != nil {
		return fmt.Errorf("sandbox: status pipe: %w", err)
	}
	st.spec.Status = 3 + len(c.ExtraFiles)
	js, err := json.Marshal(st.spec)
	if err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("sandbox: encode the spec: %w", err)
	}
	c.Args[helperArgIndex] = string(js)
	c.ExtraFiles = append(c.ExtraFiles, w)
	err = c.Cmd.Start()
	w.Close() // the helper has its copy; ours would keep reads from ever seeing EOF
	c.ExtraFiles = c.ExtraFiles[:len(c.ExtraFiles)-1]
	if err != nil {
		r.Close()
		_ = st.cg.remove()
		return fmt.Errorf("sandbox: start the helper: %w", err)
	}
	st.r, st.br = r, bufio.NewReader(r)
	line, rerr := st.br.ReadString('\n')
	l, perr := statusline.Parse(line)
	switch {
	case rerr == nil && perr == nil && l.Kind == statusline.Started && !st.spec.Exec && !st.spec.Serve:
		return nil
	case rerr == nil && perr == nil && l.Kind == statusline.Ready && st.spec.Serve:
		return nil
	case rerr == nil && perr == nil && l.Kind == statusline.Exec && st.spec.Exec:
		// The pipe is close-on-exec: EOF is the program running, a line is exec failing.
		if line, rerr = st.br.ReadString('\n'); rerr == io.EOF && line == "" {
			return nil
		}
		l, perr = statusline.Parse(line)
	}
	// The helper failed (it exits by itself after an error line) or died (EOF). Reap it so nothing
	// is left behind, and say why.
	var startErr error
	if perr == nil && l.Kind == statusline.Error {
		startErr = startError(l)
	}
	switch {
	case rerr != nil && rerr != io.EOF:
		startErr = fmt.Errorf("sandbox: reading the helper's status: %w", rerr)
		_ = c.killTree()
	case startErr == nil && rerr == nil:
		startErr = fmt.Errorf("sandbox: the helper said %q", strings.TrimSpace(line))
		_ = c.killTree()
	}
	_, _ = c.waitHelper()
	if startErr == nil {
		startErr = fmt.Errorf("sandbox: the helper ended before starting the program (%v)", c.ProcessState)
	}
	return startErr
}

// statusChannel makes the status channel: a pipe, or for a warm helper, which also reads its
// launches there, a socket pair. The first file is the host's end.
func statusChannel(serve bool) (*os.File, *os.File, error) {
	if !serve {
		return os.Pipe()
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "status"), os.NewFile(uintptr(fds[1]), "status"), nil
}

// StartError is a failure of the helper to set up the sandbox or to start the program, as
// Start returns it. It wraps the errno when there is one, so errors.Is(err, fs.ErrNotExist)
// holds for a missing program.
type StartError struct {
	// Setup is true for a layer that failed, false for the program's own exec.
	Setup bool
	Msg   string
	Errno syscall.Errno
}

// Error is the message: "sandbox: STEP: ..." for a setup failure, `exec: "PATH": ...` for the
// program's own exec.
func (e *StartError) Error() string {
	if e.Setup {
		return "sandbox: " + e.Msg
	}
	return e.Msg
}

// Unwrap returns the errno, if any.
func (e *StartError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// startError is the StartError an error line reports.
func startError(l statusline.Line) *StartError {
	return &StartError{Setup: l.Setup, Msg: l.Msg, Errno: syscall.Errno(l.Errno)}
}

// waitHelper waits for the helper and reports the program's end: from the status line in fork
// mode (the helper outlives its program by a moment), from the process itself in Exec mode.
func (c *Cmd) waitHelper() (Exit, error) {
	st := c.status
	// Reaped under the lock, after the exit, so Signal and Kill never reach a recycled pid.
	_ = waitExited(c.Process.Pid)
	st.mu.Lock()
	err := c.Cmd.Wait()
	st.reaped = true
	st.mu.Unlock()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return Exit{}, err
	}
	exit := exitOf(c.ProcessState.Sys().(syscall.WaitStatus))
	if st.br != nil && !st.spec.Exec {
		// Only the helper held the write end, so this cannot block now that it is gone.
		line, _ := st.br.ReadString('\n')
		if l, err := statusline.Parse(line); err == nil && l.Kind == statusline.Exit {
			exit = exitOfLine(l)
		}
	}
	c.release()
	return exit, nil
}

// exitOfLine is the program's end an exit line reports.
func exitOfLine(l statusline.Line) Exit {
	return Exit{Code: l.Code, Signal: syscall.Signal(l.Signal)}
}

// release ends what the tree left in its cgroup, removes the cgroup and closes the status pipe.
func (c *Cmd) release() error {
	st := c.status
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cg.kill()
	err := st.cg.remove()
	if st.r != nil {
		st.r.Close()
		st.r = nil
	}
	return err
}

// Close releases what a Cmd holds outside the process: its cgroup. Wait does it; call Close for
// a Cmd that was never started, or that a launcher such as go-plugin started and waited for.
// It kills whatever is still in the cgroup.
func (c *Cmd) Close() error {
	if c.cleanup != nil {
		defer c.runCleanup()
	}
	if c.status == nil {
		return nil
	}
	return c.release()
}

// killTree SIGKILLs the helper, its process group and its cgroup. With a pid namespace the
// helper's death alone ends every process in it.
func (c *Cmd) killTree() error {
	st := c.status
	if st == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.reaped {
			return nil // the group id may be somebody else's now
		}
		return KillGroup(c.Process.Pid)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.reaped {
		// Signalling through the pidfd succeeds only while the helper is not reaped, and an
		// unreaped leader keeps its group id from being reused, so the group kill that follows
		// cannot hit a stranger.
		if err := c.Process.Signal(syscall.SIGKILL); err == nil {
			if err := KillGroup(c.Process.Pid); err != nil {
				return err
			}
		}
	}
	st.cg.kill()
	return nil
}
