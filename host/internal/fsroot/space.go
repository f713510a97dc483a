package fsroot

import (
	"github.com/astrid-go/astrid/host/internal/principal"

	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MaxFileBytes bounds a file read_file reads and the content write_file writes: 10 MiB, as
// upstream (MAX_GUEST_PAYLOAD_LEN).
const MaxFileBytes = 10 << 20

// MaxListingBytes bounds fs_readdir's JSON array of names: 10 MiB.
const MaxListingBytes = 10 << 20

// Space is what the filesystem host functions of one capsule instance reach for one principal:
// the workspace and the principal's home, behind the capsule's gate.
type Space struct {
	// Workspace is the host's workspace directory (cwd:// and plain paths).
	Workspace string
	// StateDir is the host's state directory; homes are STATE/home/PRINCIPAL, created on demand.
	StateDir string
	// RunDir is the host's runtime directory (the shims' sockets).
	RunDir string
	// Principal is the principal the call acts for; it names the home.
	Principal string
	// Capsule is the capsule's name, as the gate's refusals name it.
	Capsule string
	// FSRead and FSWrite are the capsule's [capabilities] fs_read and fs_write.
	FSRead, FSWrite []string
}

// failure is a host function's failure in the words the guest sees.
type failure struct {
	text string
	err  error // ErrEscapes, ErrReserved, or nil
	io   bool  // an I/O failure of the operation, not a refusal
}

func (f *failure) Error() string { return f.text }
func (f *failure) Unwrap() error { return f.err }

// op names one host function in its failures, as upstream words them.
type op struct {
	gate  string // "security denied <gate>: ..."
	fail  string // the prefix of an I/O failure: "mkdir failed: ", "IO error: ", ...
	write bool
}

var (
	opExists  = op{gate: "exists check"}
	opMkdir   = op{gate: "mkdir", fail: "mkdir failed: ", write: true}
	opReaddir = op{gate: "readdir", fail: "readdir failed: "}
	opStat    = op{gate: "stat", fail: "stat failed: "}
	opUnlink  = op{gate: "unlink", fail: "unlink failed: ", write: true}
	opRead    = op{gate: "read_file", fail: "IO error: "}
	opWrite   = op{gate: "write_file", fail: "write_file failed: ", write: true}
)

// ioText is an operating-system error in the words of upstream's VfsError::Io: "IO error: No
// such file or directory (os error 2)".
func ioText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
			msg = string(msg[0]-'a'+'A') + msg[1:]
		}
		return fmt.Sprintf("IO error: %s (os error %d)", msg, int(errno))
	}
	return "IO error: " + err.Error()
}

func (o op) ioFailure(err error) error { return &failure{text: o.fail + ioText(err), io: true} }

// target is a resolved path: its parent directory, opened beneath the root, and its last name.
type target struct {
	root *Root
	dir  int    // the parent directory; the path's directory itself when name is ""
	name string // "" when the path names its scheme's root
	phys string // the physical path the gate checked
}

func (t *target) close() {
	unix.Close(t.dir)
	t.root.Close()
}

// homePath is the principal's home: STATE/home/PRINCIPAL with the state directory's symlinks
// resolved.
func (s *Space) homePath() (string, error) {
	if err := principal.Check(s.Principal); err != nil {
		return "", fmt.Errorf("home:// is not available: %w", err)
	}
	state, err := filepath.EvalSymlinks(s.StateDir)
	if err != nil {
		return "", fmt.Errorf("home:// is not available: the state directory: %w", err)
	}
	return filepath.Join(state, "home", s.Principal), nil
}

// openRoot opens the root of p's scheme: the workspace, which must not lie in the state or
// runtime directory and whose paths must not reach them, or the principal's home (created on
// demand, 0700), whose paths must not reach the runtime directory.
func (s *Space) openRoot(p Path) (*Root, error) {
	if p.Scheme == Workspace {
		r, err := Open(s.Workspace, s.StateDir, s.RunDir)
		if err != nil {
			return nil, &failure{text: fmt.Sprintf("the workspace is not available: %v", err)}
		}
		return r, nil
	}
	home, err := s.homePath()
	if err != nil {
		return nil, &failure{text: err.Error()}
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, &failure{text: fmt.Sprintf("home:// is not available: %v", err)}
	}
	r, err := Open(home, s.RunDir)
	if err != nil {
		return nil, &failure{text: fmt.Sprintf("home:// is not available: %v", err)}
	}
	if p.Scheme == Tmp { // /tmp is created on demand inside the home
		if err := r.mkdirAll(tmpDir); err != nil {
			r.Close()
			return nil, &failure{text: fmt.Sprintf("/tmp is not available: %v", err)}
		}
	}
	return r, nil
}

// gate builds the capsule's gate for this call: the entries of the root p names (cwd:// and `*`
// for the workspace, home:// for the home and /tmp) and the literal ones.
func (s *Space) gate(r *Root, p Path) *Gate {
	if p.Scheme == Workspace {
		return NewGate(s.Capsule, s.FSRead, s.FSWrite, r.Path(), "")
	}
	return NewGate(s.Capsule, s.FSRead, s.FSWrite, "", r.Path())
}

// check runs the gate for o on the physical path phys.
func (o op) check(g *Gate, phys string) error {
	check := g.CheckRead
	if o.write {
		check = g.CheckWrite
	}
	if err := check(phys); err != nil {
		return &failure{text: fmt.Sprintf("security denied %s: %v", o.gate, err)}
	}
	return nil
}

// refuseDotDot is the refusal of a path with a ".." component: the gate's, which refuses any
// such path (as upstream's), named as the guest named it below the root.
func (o op) refuseDotDot(g *Gate, r *Root, p Path) error {
	if err := o.check(g, lexical(r, p)); err != nil {
		return err
	}
	return &failure{text: fmt.Sprintf("security denied %s: %s has a '..' component", o.gate, p.Raw)}
}

// lexical is the path as named, below the root's physical path (for a refusal that comes before
// anything is opened, such as a ".." component).
func lexical(r *Root, p Path) string {
	if len(p.Comps) == 0 {
		return r.Path()
	}
	return r.Path() + "/" + join(p.Comps)
}

// escapes is the failure of a path that resolution refused.
func escapes(p Path, r *Root, err error) error {
	if errors.Is(err, ErrReserved) {
		return &failure{text: fmt.Sprintf("path is reserved: %s resolves into the host's state or runtime directory, which capsules cannot reach", p.Raw), err: ErrReserved}
	}
	return &failure{text: fmt.Sprintf("path escapes root boundary: %s resolves outside %s", p.Raw, r.Path()), err: ErrEscapes}
}

// resolve opens p's parent beneath its root and checks the gate of o on the physical path. A
// path with ".." is refused by the gate before anything is opened; so is one whose parent does
// not exist when the gate refuses the path as named (no probing outside the grants).
func (s *Space) resolve(raw []byte, o op) (*target, error) {
	p, err := Parse(raw)
	if err != nil {
		return nil, &failure{text: err.Error()}
	}
	r, err := s.openRoot(p)
	if err != nil {
		return nil, err
	}
	g := s.gate(r, p)
	if p.dotdot {
		r.Close()
		return nil, o.refuseDotDot(g, r, p)
	}
	dirComps, name := p.Comps, ""
	if !p.isRoot() {
		dirComps, name = p.Comps[:len(p.Comps)-1], p.Comps[len(p.Comps)-1]
	}
	dir, err := r.openDir(dirComps)
	if err != nil {
		defer r.Close()
		if !errors.Is(err, ErrEscapes) && !errors.Is(err, ErrReserved) {
			// What does exist of the path may still lie in an excluded directory: say so
			// rather than whether the rest exists.
			if fd, _, derr := r.openDeepest(dirComps, 0); derr == nil {
				unix.Close(fd)
			} else if errors.Is(derr, ErrEscapes) || errors.Is(derr, ErrReserved) {
				err = derr
			}
		}
		if errors.Is(err, ErrEscapes) || errors.Is(err, ErrReserved) {
			return nil, escapes(p, r, err)
		}
		if gerr := o.check(g, lexical(r, p)); gerr != nil {
			return nil, gerr
		}
		return nil, o.ioFailure(err)
	}
	t := &target{root: r, dir: dir, name: name}
	if t.phys, err = t.physical(); err == nil {
		err = t.checkName()
	}
	if err != nil {
		t.close()
		return nil, escapes(p, r, err)
	}
	if err := o.check(g, t.phys); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// physical is the target's physical path: its parent's, as the kernel names the open directory,
// and its name. The parent must still lie beneath the root's path.
func (t *target) physical() (string, error) {
	dp, err := fdPath(t.dir)
	if err != nil {
		return "", err
	}
	if !under(dp, t.root.Path()) {
		return "", ErrEscapes
	}
	if t.name == "" {
		return dp, nil
	}
	return dp + "/" + t.name, nil
}

// checkName refuses a last name that is itself an excluded directory.
func (t *target) checkName() error {
	if t.name == "" || len(t.root.exclude) == 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(t.dir, t.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // nothing there (yet): it cannot be an excluded directory
	}
	id := idOf(&st)
	for _, x := range t.root.exclude {
		if id == x {
			return ErrReserved
		}
	}
	return nil
}

// lstat describes the target without following a symlink in its last name.
func (t *target) lstat(st *unix.Stat_t) error {
	if t.name == "" {
		return unix.Fstat(t.dir, st)
	}
	return unix.Fstatat(t.dir, t.name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// open opens the target with flags, never following a symlink in its last name.
func (t *target) open(flags int, mode uint32) (int, error) {
	name := t.name
	if name == "" {
		name = "."
	}
	return unix.Openat(t.dir, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, mode)
}

// mkdirAll creates the directory comps beneath the root, with its missing parents.
func (r *Root) mkdirAll(comps []string) error {
	fd, err := r.openDir(nil)
	if err != nil {
		return err
	}
	defer func() { unix.Close(fd) }()
	for _, c := range comps {
		if err := unix.Mkdirat(fd, c, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		unix.Close(fd)
		fd = next
	}
	return nil
}

// openDeepest opens the longest prefix of comps, at least min components long, that exists as a
// directory beneath the root, and returns it with its length. An escape or an excluded directory
// on the way is an error.
func (r *Root) openDeepest(comps []string, min int) (int, int, error) {
	var err error
	for i := len(comps); i >= min; i-- {
		var fd int
		fd, err = r.openDir(comps[:i])
		switch {
		case err == nil:
			return fd, i, nil
		case errors.Is(err, unix.ENOENT):
			continue
		default:
			return -1, i, err
		}
	}
	return -1, min, err
}
