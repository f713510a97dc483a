package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/host/internal/safefile"
	"github.com/astrid-go/astrid/shared"
)

// Limits of what Install copies from a capsule directory. A capsule directory is written by
// whoever made the capsule, so everything about it is bounded before it is read.
const (
	// MaxInstallFiles is the most entries (files and directories, the capsule directory itself
	// not counted) an installed capsule may have: 10,000.
	MaxInstallFiles = 10_000
	// MaxInstallBytes is the most bytes an installed capsule's files may hold together: 512 MiB.
	// The module alone may be at most shared.MaxModuleBytes (256 MiB).
	MaxInstallBytes = 512 << 20
)

// skipDirs are directories Install does not copy, wherever they are: version-control data is no
// part of a capsule (upstream skips it too).
var skipDirs = map[string]bool{".git": true}

// copyLimits are the bounds of one copy; Install uses the constants above, tests smaller ones.
type copyLimits struct {
	files       int
	bytes       int64
	moduleBytes int64
}

var defaultLimits = copyLimits{files: MaxInstallFiles, bytes: MaxInstallBytes, moduleBytes: shared.MaxModuleBytes}

// copier copies a capsule directory into a staging directory of the store.
//
// Only regular files and directories are copied. A symlink is copied as the regular file it
// leads to when that file is inside the source directory; a symlink that leads out of it (or to
// a directory, or nowhere) is refused, so that installing a capsule never copies files its
// author does not own (a link to ~/.ssh/id_ed25519) into the store. Devices, FIFOs and sockets
// are refused. Files are opened without following a final symlink and checked again on the open
// descriptor, so a name swapped during the copy cannot slip another kind of file in.
type copier struct {
	root   string // the source directory, absolute and with symlinks resolved
	module string // the module's path relative to root, cleaned
	lim    copyLimits
	files  int
	bytes  int64
	// store is the directory the copy is made in (STATE/capsules): a source that contains it
	// would copy the copy being made.
	store fs.FileInfo
}

// copyTree copies the capsule directory src into dst (which must not exist). module is the
// capsule's module path relative to src.
func copyTree(src, dst, module string, lim copyLimits) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("read the capsule directory %s: %w", src, err)
	}
	if root, err = filepath.Abs(root); err != nil {
		return err
	}
	c := &copier{root: root, module: filepath.Clean(filepath.FromSlash(module)), lim: lim}
	if c.store, err = os.Stat(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if err := c.dir(root, dst, ""); err != nil {
		return err
	}
	return syncFS(dst)
}

// dir copies the entries of the directory src (rel inside the capsule) into dst.
func (c *copier) dir(src, dst, rel string) error {
	d, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	defer d.Close()
	for {
		// In batches, so that a directory of millions of entries is refused at the limit
		// rather than read whole first.
		entries, err := d.ReadDir(256)
		for _, e := range entries {
			if err := c.entry(src, dst, rel, e); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(entries) == 0) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
	}
	return nil
}

// entry copies one directory entry.
func (c *copier) entry(srcDir, dstDir, relDir string, e fs.DirEntry) error {
	name := e.Name()
	src, dst, rel := filepath.Join(srcDir, name), filepath.Join(dstDir, name), filepath.Join(relDir, name)
	if e.IsDir() && skipDirs[name] {
		return nil
	}
	c.files++
	if c.files > c.lim.files {
		return fmt.Errorf("the capsule directory %s has more than %d files and directories, the most install copies", c.root, c.lim.files)
	}
	switch t := e.Type(); {
	case t.IsDir():
		if fi, err := os.Lstat(src); err == nil && os.SameFile(fi, c.store) {
			return fmt.Errorf("the capsule directory %s contains the capsule store %s: install from a directory outside the state directory", c.root, src)
		}
		if err := os.Mkdir(dst, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dst, err)
		}
		return c.dir(src, dst, rel)
	case t.IsRegular():
		return c.file(src, dst, rel, 0)
	case t&fs.ModeSymlink != 0:
		return c.symlink(src, dst, rel)
	default:
		return fmt.Errorf("%s is %s: install copies only regular files and directories", src, safefile.Describe(t))
	}
}

// symlink copies the regular file a symlink inside the capsule leads to, if that file is inside
// the capsule directory too.
func (c *copier) symlink(src, dst, rel string) error {
	link, _ := os.Readlink(src)
	target, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("%s is a symlink to %s, which does not exist: install copies only the capsule's own files", src, link)
	}
	inside, err := filepath.Rel(c.root, target)
	if err != nil || !filepath.IsLocal(inside) {
		return fmt.Errorf("%s is a symlink to %s, outside the capsule directory %s: install copies only the capsule's own files (copy the file into the capsule instead of linking it)", src, target, c.root)
	}
	fi, err := os.Lstat(target)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is a symlink to %s, which is %s: install follows a symlink only to a regular file inside the capsule", src, target, safefile.Describe(fi.Mode()))
	}
	return c.file(target, dst, rel, fi.Mode().Perm())
}

// file copies the regular file src to dst, within what is left of the byte budget (and, for the
// module, within shared.MaxModuleBytes). perm, when not 0, is the mode to give the copy.
func (c *copier) file(src, dst, rel string, perm fs.FileMode) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s: install copies only regular files and directories", src, safefile.Describe(fi.Mode()))
	}
	if perm == 0 {
		perm = fi.Mode().Perm()
	}
	limit, what := c.lim.bytes-c.bytes, fmt.Sprintf("the %d bytes (%s) install copies of a capsule in all", c.lim.bytes, sizeText(c.lim.bytes))
	if rel == c.module && c.lim.moduleBytes < limit {
		limit, what = c.lim.moduleBytes, fmt.Sprintf("the %d bytes (%s) a module may have", c.lim.moduleBytes, sizeText(c.lim.moduleBytes))
	}
	if fi.Size() > limit {
		return fmt.Errorf("%s (%d bytes) does not fit in %s", src, fi.Size(), what)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm&0o755|0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	n, err := io.Copy(out, io.LimitReader(in, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%s grew while it was copied and no longer fits in %s", src, what)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	c.bytes += n
	return nil
}

// syncFS flushes the filesystem that holds path to disk (syncfs(2)): once, after a whole tree was
// copied, rather than an fsync for each of its thousands of files and directories.
func syncFS(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// syncDir flushes a directory's entries to disk, so that a rename or a new file in it survives a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// sizeText formats a byte count in MiB or KiB, for messages.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
