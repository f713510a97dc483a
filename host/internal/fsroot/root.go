// Package fsroot performs the Astrid filesystem host functions (astrid_fs_*, astrid_read_file,
// astrid_write_file) for a guest: it maps the guest's path onto a root directory (the workspace
// or the principal's home), resolves it so that neither a symlink nor a race can lead outside
// that root or into the host's own directories, checks the capsule's fs_read/fs_write gate on
// the physical path, and does the operation.
//
// Resolution never decides containment by looking at path strings. The root is opened once per
// call, and every directory below it is opened beneath that descriptor with openat2(2) and
// RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS: the kernel follows a symlink only while it stays beneath
// the root, and refuses (EXDEV) one that leads out, whether it was there before or swapped in
// during the lookup. The last component of a path is always handled with the *at system call on
// the opened parent (mkdirat, unlinkat, fstatat, openat with O_NOFOLLOW), so a symlink in the
// last position is never followed: reading or writing through it is refused, stat describes the
// link and unlink removes the link. Where the kernel lacks openat2 (ENOSYS, Linux before 5.6),
// directories are walked one component at a time with openat(O_NOFOLLOW|O_DIRECTORY), which
// refuses every symlink in a path instead of following the ones that stay inside.
//
// The host's state and runtime directories may lie inside the workspace. Directories a Root must
// never reach are given to Open; after a directory is opened its ancestry is walked with ".." up
// to the root and compared by device and inode with them, so neither a symlink nor a rename can
// lead a guest into kv.db, the module cache or the shims' sockets.
package fsroot

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fileID identifies a file independently of its name.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{dev: uint64(st.Dev), ino: st.Ino} }

// Root is an open directory that paths resolve beneath.
type Root struct {
	fd      int    // O_PATH|O_DIRECTORY descriptor of the root
	path    string // the root's physical path when it was opened
	id      fileID
	exclude []fileID // directories nothing resolved beneath the root may be in
}

// Errors of resolution, wrapped by the errors Root's methods return.
var (
	// ErrEscapes: the path leads outside the root (a symlink to an absolute path or above the
	// root; on kernels without openat2, any symlink).
	ErrEscapes = errors.New("path escapes root boundary")
	// ErrReserved: the path leads into a directory the root excludes (the host's state or
	// runtime directory).
	ErrReserved = errors.New("path is reserved for the host")
)

// maxDepth bounds the ancestry walk: a path of at most 4 KiB has fewer components.
const maxDepth = 4096

// Open opens the directory at path as a root. exclude names directories that nothing resolved
// beneath the root may lie in (the host's state and runtime directories); one that does not exist
// is ignored. Open fails with ErrReserved when the root itself lies in one of them.
func Open(path string, exclude ...string) (*Root, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r := &Root{fd: fd}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		r.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	r.id = idOf(&st)
	if r.path, err = fdPath(fd); err != nil {
		r.Close()
		return nil, err
	}
	for _, x := range exclude {
		var xs unix.Stat_t
		if err := unix.Stat(x, &xs); err != nil {
			continue
		}
		r.exclude = append(r.exclude, idOf(&xs))
	}
	// The root itself must not lie in an excluded directory: walk to the filesystem's root.
	if err := r.checkAncestry(fd, true); err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Close closes the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Path is the root's physical path (symlinks resolved) when it was opened.
func (r *Root) Path() string { return r.path }

// fdPath is the physical path of an open descriptor, as the kernel names it.
func fdPath(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf)
	if err != nil {
		return "", fmt.Errorf("the path of an open directory cannot be read from /proc/self/fd: %w", err)
	}
	return string(buf[:n]), nil
}

// checkAncestry walks from the directory fd up through ".." and fails with ErrReserved when fd or
// any directory above it, up to the root (or to the filesystem's root when pastRoot), is
// excluded. It fails with ErrEscapes when the walk passes the filesystem's root without meeting
// the root.
func (r *Root) checkAncestry(fd int, pastRoot bool) error {
	if len(r.exclude) == 0 {
		return nil
	}
	cur, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	defer func() { unix.Close(cur) }()
	var st unix.Stat_t
	if err := unix.Fstat(cur, &st); err != nil {
		return err
	}
	for range maxDepth {
		id := idOf(&st)
		for _, x := range r.exclude {
			if id == x {
				return ErrReserved
			}
		}
		if id == r.id && !pastRoot {
			return nil
		}
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("walk up from a directory: %w", err)
		}
		unix.Close(cur)
		cur = up
		var ust unix.Stat_t
		if err := unix.Fstat(cur, &ust); err != nil {
			return err
		}
		if idOf(&ust) == id { // "/": its parent is itself
			if pastRoot {
				return nil
			}
			return ErrEscapes
		}
		st = ust
	}
	return fmt.Errorf("walk up from a directory: more than %d levels", maxDepth)
}

// useOpenat2 is cleared the first time openat2 reports ENOSYS; tests clear it to exercise the
// component walk.
var useOpenat2 atomic.Bool

func init() { useOpenat2.Store(true) }

// openat2Retries bounds the retries of an openat2 that reports EAGAIN (a rename elsewhere raced
// the lookup of a ".." in a symlink's target).
const openat2Retries = 128

// openDir opens the directory comps (relative to the root, no "." or ".." components; none is
// the root itself) beneath the root, and checks that it lies in no excluded directory. The
// caller closes the descriptor.
func (r *Root) openDir(comps []string) (int, error) {
	if len(comps) == 0 {
		return unix.Dup(r.fd)
	}
	fd, err := r.openBeneath(comps)
	if err != nil {
		return -1, err
	}
	if err := r.checkAncestry(fd, false); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// openBeneath opens the directory comps beneath the root without any containment check of its
// own beyond the kernel's.
func (r *Root) openBeneath(comps []string) (int, error) {
	if useOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		}
		rel := join(comps)
		for range openat2Retries {
			fd, err := unix.Openat2(r.fd, rel, &how)
			switch {
			case err == nil:
				return fd, nil
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.ENOSYS):
				useOpenat2.Store(false)
				return r.walk(comps)
			case errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP):
				return -1, ErrEscapes
			default:
				return -1, err
			}
		}
		return -1, fmt.Errorf("open beneath the root: the lookup raced a rename %d times", openat2Retries)
	}
	return r.walk(comps)
}

// walk opens the directory comps one component at a time, never following a symlink: the
// fallback where openat2 is missing.
func (r *Root) walk(comps []string) (int, error) {
	cur, err := unix.Dup(r.fd)
	if err != nil {
		return -1, err
	}
	for _, c := range comps {
		next, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(next, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				err = unix.ENOTDIR
			}
			if err != nil {
				unix.Close(next)
			}
		}
		if err != nil {
			var st unix.Stat_t
			if (errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)) &&
				unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = ErrEscapes
			}
			unix.Close(cur)
			return -1, err
		}
		unix.Close(cur)
		cur = next
	}
	return cur, nil
}

// join joins path components with "/".
func join(comps []string) string {
	n := 0
	for _, c := range comps {
		n += len(c) + 1
	}
	b := make([]byte, 0, n)
	for i, c := range comps {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, c...)
	}
	return string(b)
}
