package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The mount namespace. A new mount namespace alone changes nothing the process sees; these steps
// are what make it worth having:
//
//   - / becomes private, so nothing mounted here propagates to the host;
//   - a fresh /proc (with a pid namespace) lists only the tree's own processes;
//   - the private tmp is bound on /tmp, /dev/shm is a private tmpfs, and /run (with the host's
//     sockets: docker, dbus, ...) is covered by an empty tmpfs; paths the process was given that
//     lie under /tmp, /dev/shm or /run are bound back at their own names;
//   - with the helper running as uid 0 (a root host), the secrets root could read in the allowed
//     system directories are masked;
//   - the Hidden paths (the host's state directory) are covered with an empty tmpfs, so a
//     process whose workspace holds them can neither read nor write them;
//   - every mount becomes read-only except the ReadWrite paths, /tmp and /dev/shm. Landlock does
//     not cover chmod, chown, utimes or extended attributes, and for a root host the process owns
//     every root-owned file; a read-only mount refuses them all (EROFS).

// maskedFiles are files only root should read, which a root host's process (uid 0, owner of
// them) could read in the allowed /etc. Globs; missing ones are skipped.
var maskedFiles = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/ssh/ssh_host_*_key", "/etc/sudoers",
}

// maskedDirs are directories masked with an empty read-only tmpfs for the same reason.
var maskedDirs = []string{"/etc/sudoers.d", "/etc/ssl/private"}

func (h *helper) setupMounts() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if h.spec.PIDNS {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount a fresh /proc: %w", err)
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("getwd: %w", err)
	}
	keep := slices.Concat(h.spec.ReadOnly, h.spec.ReadWrite, []string{h.path, cwd})
	if target, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil {
		keep = append(keep, target) // systemd-resolved keeps it in /run
	}
	writable := slices.Clone(h.spec.ReadWrite)
	covered := map[string]bool{}
	if tmp := h.spec.PrivateTmp; tmp != "" {
		err := cover("/tmp", keep, covered, func() error {
			return unix.Mount(tmp, "/tmp", "", unix.MS_BIND|unix.MS_REC, "")
		})
		if err != nil {
			return fmt.Errorf("bind %s on /tmp: %w", tmp, err)
		}
		writable = append(writable, "/tmp")
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// POSIX shared memory and semaphores (Python's multiprocessing, for one) need it; the
		// host's is shared by everything on the machine. Paths the process was given under it
		// (a shim's socket directory, in the host's runtime directory there) are bound back.
		err := cover("/dev/shm", keep, covered, func() error {
			return unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=64m")
		})
		if err != nil {
			return fmt.Errorf("a private /dev/shm: %w", err)
		}
		writable = append(writable, "/dev/shm")
		h.privateShm = true
	}
	for _, run := range []string{"/run", "/var/run"} {
		if fi, err := os.Lstat(run); err != nil || !fi.IsDir() {
			continue // missing, or (as usual for /var/run) a symlink to /run
		}
		err := cover(run, keep, covered, func() error {
			return unix.Mount("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k")
		})
		if err != nil {
			return fmt.Errorf("hide %s: %w", run, err)
		}
	}
	if os.Geteuid() == 0 {
		if err := maskSecrets(); err != nil {
			return err
		}
	}
	for _, p := range h.spec.ReadWrite {
		if covered[p] {
			continue // already a mount of its own
		}
		// A mount of its own, so it can be left writable below.
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
	}
	if err := h.hide(covered); err != nil {
		return err
	}
	ro := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, &ro); err != nil {
		return fmt.Errorf("make the filesystem read-only: %w", err)
	}
	rw := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
	for _, p := range writable {
		// EPERM: the host mounted it read-only, and so it stays.
		if err := unix.MountSetattr(-1, p, 0, &rw); err != nil && err != unix.EPERM {
			return fmt.Errorf("make %s writable: %w", p, err)
		}
	}
	if covered[cwd] || under(cwd, "/tmp") || under(cwd, "/dev/shm") || under(cwd, "/run") || slices.ContainsFunc(h.spec.Hidden, func(p string) bool { return under(cwd, p) }) {
		// The working directory still refers to the covered original; enter what is there now.
		if err := os.Chdir(cwd); err != nil {
			return fmt.Errorf("chdir %s: %w", cwd, err)
		}
	}
	return nil
}

// hide covers the spec's Hidden paths, after the other mounts (a hidden path may lie in the
// workspace's own mount): a directory with an empty tmpfs, a file with the null device, both
// made read-only with the rest of the filesystem. The ReadOnly and ReadWrite paths beneath a
// hidden directory (a shim's module cache in the state directory) are bound back.
func (h *helper) hide(covered map[string]bool) error {
	keep := slices.Concat(h.spec.ReadOnly, h.spec.ReadWrite)
	for _, p := range h.spec.Hidden {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // nothing there to hide
		}
		if err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
		if !fi.IsDir() {
			if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("hide %s: %w", p, err)
			}
			continue
		}
		err = cover(p, keep, covered, func() error {
			return unix.Mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k")
		})
		if err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
	}
	return nil
}

// cover mounts something on dir (with mount) and binds the paths in keep that lie under dir back
// at their own names inside it, recording them in covered. They are opened before dir is covered
// and bound from their descriptors.
func cover(dir string, keep []string, covered map[string]bool, mount func() error) error {
	type kept struct {
		path string
		fd   int
		dir  bool
	}
	var ks []kept
	defer func() {
		for _, k := range ks {
			unix.Close(k.fd)
		}
	}()
	paths := slices.Clone(keep)
	slices.Sort(paths) // parents before their children
	for _, p := range slices.Compact(paths) {
		if !under(p, dir) || p == dir {
			continue
		}
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue // landlock reports a missing path it was asked for
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fmt.Errorf("stat %s: %w", p, err)
		}
		ks = append(ks, kept{path: p, fd: fd, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR})
	}
	if err := mount(); err != nil {
		return err
	}
	for _, k := range ks {
		if err := mountPoint(k.path, k.dir); err != nil {
			return err
		}
		src := fmt.Sprintf("/proc/self/fd/%d", k.fd)
		if err := unix.Mount(src, k.path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s back: %w", k.path, err)
		}
		covered[k.path] = true
	}
	return nil
}

// mountPoint makes an empty directory or file at p to bind onto (in the private tmp or the tmpfs
// on /run, so nothing of the host's changes).
func mountPoint(p string, dir bool) error {
	if dir {
		return os.MkdirAll(p, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// maskSecrets covers the files and directories only root should read.
func maskSecrets() error {
	for _, pattern := range maskedFiles {
		matches, _ := filepath.Glob(pattern)
		for _, p := range matches {
			if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("mask %s: %w", p, err)
			}
		}
	}
	for _, p := range maskedDirs {
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k"); err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// under reports whether p is dir or lies beneath it (both clean and absolute).
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
