package fsroot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/host/internal/safefile"
)

// rootRefusal is upstream's refusal of mkdir and unlink on a scheme's root.
const rootRefusal = "Cannot operate on capability root directly"

// Exists reports whether path names something (a symlink in the last name counts as itself).
// Refusals are errors; a path that cannot be looked up is false, as upstream.
func (s *Space) Exists(path []byte) (bool, error) {
	t, err := s.resolve(path, opExists)
	if err != nil {
		if f, ok := err.(*failure); ok && f.io {
			return false, nil
		}
		return false, err
	}
	defer t.close()
	var st unix.Stat_t
	return t.lstat(&st) == nil, nil
}

// Mkdir creates the directory path and its missing parents (upstream's create_dir_all); an
// existing directory is success. The gate checks the physical path of the directory asked for:
// its deepest existing ancestor's and the names still to create.
func (s *Space) Mkdir(path []byte) error {
	p, err := Parse(path)
	if err != nil {
		return &failure{text: err.Error()}
	}
	r, err := s.openRoot(p)
	if err != nil {
		return err
	}
	defer r.Close()
	g := s.gate(r, p)
	if p.dotdot {
		return opMkdir.refuseDotDot(g, r, p)
	}
	// The deepest existing ancestor, opened beneath the root.
	fd, i, err := r.openDeepest(p.Comps, p.base)
	if err != nil {
		if errors.Is(err, ErrEscapes) || errors.Is(err, ErrReserved) {
			return escapes(p, r, err)
		}
		if gerr := opMkdir.check(g, lexical(r, p)); gerr != nil {
			return gerr
		}
		return opMkdir.ioFailure(err)
	}
	defer func() { unix.Close(fd) }()
	t := &target{root: r, dir: fd}
	phys, err := t.physical()
	if err != nil {
		return escapes(p, r, err)
	}
	if rest := p.Comps[i:]; len(rest) > 0 {
		phys += "/" + join(rest)
	}
	if err := opMkdir.check(g, phys); err != nil {
		return err
	}
	if p.isRoot() {
		return &failure{text: opMkdir.fail + "Permission denied: " + rootRefusal}
	}
	for _, c := range p.Comps[i:] {
		if err := unix.Mkdirat(fd, c, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return opMkdir.ioFailure(err)
		}
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return opMkdir.ioFailure(err)
		}
		unix.Close(fd)
		fd = next
		if r.excluded(fd) {
			return escapes(p, r, ErrReserved)
		}
	}
	return nil
}

// excluded reports whether the open directory fd is one of the root's excluded directories.
func (r *Root) excluded(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return true
	}
	return slices.Contains(r.exclude, idOf(&st))
}

// Readdir lists the names in the directory path, sorted, as a JSON array. A symlink in the last
// name is not followed.
func (s *Space) Readdir(path []byte) ([]byte, error) {
	t, err := s.resolve(path, opReaddir)
	if err != nil {
		return nil, err
	}
	defer t.close()
	fd, err := t.open(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, opReaddir.ioFailure(err)
	}
	f := os.NewFile(uintptr(fd), t.phys)
	defer f.Close()
	if t.name != "" && t.root.excluded(fd) {
		return nil, escapes(Path{Raw: string(path)}, t.root, ErrReserved)
	}
	var names []string
	size := 2
	for {
		batch, err := f.Readdirnames(1024)
		for _, n := range batch {
			size += len(n) + 3 // quotes and comma, before escapes
			names = append(names, n)
		}
		if size > MaxListingBytes {
			return nil, &failure{text: fmt.Sprintf("%sthe directory has too many entries: its listing exceeds %d bytes", opReaddir.fail, MaxListingBytes)}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			break
		}
		if err != nil {
			return nil, opReaddir.ioFailure(unwrapPathError(err))
		}
	}
	slices.Sort(names)
	if names == nil {
		names = []string{}
	}
	out, err := json.Marshal(names)
	if err != nil {
		return nil, opReaddir.ioFailure(err)
	}
	if len(out) > MaxListingBytes {
		return nil, &failure{text: fmt.Sprintf("%sthe directory has too many entries: its listing exceeds %d bytes", opReaddir.fail, MaxListingBytes)}
	}
	return out, nil
}

// unwrapPathError returns the errno inside an *os.PathError or *os.SyscallError.
func unwrapPathError(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Stat describes path as upstream's {"size","isDir","mtime"} (mtime in whole seconds since the
// epoch). A symlink in the last name is described itself, as upstream's symlink_metadata.
func (s *Space) Stat(path []byte) ([]byte, error) {
	t, err := s.resolve(path, opStat)
	if err != nil {
		return nil, err
	}
	defer t.close()
	var st unix.Stat_t
	if err := t.lstat(&st); err != nil {
		return nil, opStat.ioFailure(err)
	}
	mtime := max(st.Mtim.Sec, 0)
	return fmt.Appendf(nil, `{"size":%d,"isDir":%t,"mtime":%d}`, st.Size, st.Mode&unix.S_IFMT == unix.S_IFDIR, mtime), nil
}

// Unlink removes the file, symlink or empty directory path.
func (s *Space) Unlink(path []byte) error {
	t, err := s.resolve(path, opUnlink)
	if err != nil {
		return err
	}
	defer t.close()
	if t.name == "" {
		return &failure{text: opUnlink.fail + "Permission denied: " + rootRefusal}
	}
	var st unix.Stat_t
	if err := t.lstat(&st); err != nil {
		return opUnlink.ioFailure(err)
	}
	flags := 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(t.dir, t.name, flags); err != nil {
		return opUnlink.ioFailure(err)
	}
	return nil
}

// ReadFile reads the regular file path, at most MaxFileBytes: the size is checked with fstat on
// the opened descriptor before a byte is read, and the read stops one byte past the limit. A
// symlink in the last name, a FIFO or a device is refused without blocking.
func (s *Space) ReadFile(path []byte) ([]byte, error) {
	t, err := s.resolve(path, opRead)
	if err != nil {
		return nil, err
	}
	defer t.close()
	fd, err := t.open(unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, opRead.ioFailure(err)
	}
	f := os.NewFile(uintptr(fd), t.phys)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, opRead.ioFailure(unwrapPathError(err))
	}
	if fi.IsDir() {
		return nil, opRead.ioFailure(unix.EISDIR)
	}
	if !fi.Mode().IsRegular() {
		return nil, &failure{text: fmt.Sprintf("%sPermission denied: %s is %s, not a regular file", opRead.fail, string(path), safefile.Describe(fi.Mode()))}
	}
	if fi.Size() > MaxFileBytes {
		return nil, &failure{text: fmt.Sprintf("%sPermission denied: File too large to read into memory (%d bytes > %d bytes)", opRead.fail, fi.Size(), MaxFileBytes)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, opRead.ioFailure(unwrapPathError(err))
	}
	if len(data) > MaxFileBytes { // it grew after the fstat
		return nil, &failure{text: fmt.Sprintf("%sPermission denied: File too large to read into memory (at least %d bytes > %d bytes)", opRead.fail, len(data), MaxFileBytes)}
	}
	return data, nil
}

// WriteFile creates or replaces the contents of the regular file path (its directory must
// exist). A symlink in the last name is refused, and so is anything but a regular file; the file
// is truncated only once it is known to be one.
func (s *Space) WriteFile(path, content []byte) error {
	if len(content) > MaxFileBytes {
		return &failure{text: fmt.Sprintf("%sthe content is %d bytes; the limit is %d bytes", opWrite.fail, len(content), MaxFileBytes)}
	}
	t, err := s.resolve(path, opWrite)
	if err != nil {
		return err
	}
	defer t.close()
	fd, err := t.open(unix.O_WRONLY|unix.O_CREAT|unix.O_NONBLOCK, 0o666)
	if err != nil {
		return opWrite.ioFailure(err)
	}
	f := os.NewFile(uintptr(fd), t.phys)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return opWrite.ioFailure(unwrapPathError(err))
	}
	if !fi.Mode().IsRegular() {
		return &failure{text: fmt.Sprintf("%sPermission denied: %s is %s, not a regular file", opWrite.fail, string(path), safefile.Describe(fi.Mode()))}
	}
	if err := f.Truncate(0); err != nil {
		return opWrite.ioFailure(unwrapPathError(err))
	}
	if _, err := f.Write(content); err != nil {
		return opWrite.ioFailure(unwrapPathError(err))
	}
	return nil
}
