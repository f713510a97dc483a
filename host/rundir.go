package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox"
)

// shmDir is the machine's shared-memory directory: a tmpfs on Linux, world-writable and sticky
// as /tmp is.
const shmDir = "/dev/shm"

// runDirPrefix begins the name of every host's runtime directory.
const runDirPrefix = "astrid-run-"

// runDirFor makes the host's runtime directory, which holds the per-shim socket directories (and,
// under run, go-plugin's socket directories for the host's services). Unix socket paths are
// limited to 108 bytes, so it does not live in the state directory but in runDirBase. The
// directory is locked (lockRunDir) before runDirFor returns: lock, which the host keeps open
// until the directory is removed.
//
// A shim may write files in its socket directory; in /dev/shm they are memory, which the shim's
// cgroup (its memory limit) is charged for. So the runtime directory goes there only when shims
// have that cgroup, or have no sandbox at all (they may then write wherever the host may).
func runDirFor(sb *sandbox.Sandbox) (dir string, lock *os.File, err error) {
	shm := ""
	if sb == nil || sb.Policy() == sandbox.Off || sb.Has(sandbox.LayerCgroup) {
		shm = shmDir
	}
	dir, err = os.MkdirTemp(runDirBase(os.Getenv("TMPDIR"), shm), runDirPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("runtime directory: %w", err)
	}
	dir = filepath.Clean(dir)
	if lock, err = lockRunDir(dir); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, lock, nil
}

// runDirLock is the file of a runtime directory on which its host holds an exclusive flock(2)
// for as long as it runs. The kernel lets the lock go when the host's process ends, however it
// ends (a SIGKILL, a crash): a runtime directory whose lock can be taken is one whose host is
// gone, and the next host to start removes it (sweepRunDirs). The file is opened close-on-exec,
// so no shim or helper the host starts holds it.
const runDirLock = "host.lock"

// lockRunDir makes dir's lock file and takes its lock.
func lockRunDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, runDirLock), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("runtime directory: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("runtime directory: lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// staleRunDirAge is how long a runtime directory must have gone unchanged before sweepRunDirs
// considers it: a host locks its directory microseconds after making it, and a directory being
// removed (".removing") is gone in milliseconds, so neither is ever taken for a dead host's.
const staleRunDirAge = time.Minute

// sweepRunDirs removes, from base, the runtime directories of hosts that are gone: those of this
// user, unchanged for staleRunDirAge, whose lock (runDirLock) it can take, and those left half
// removed (a ".removing" name). A directory without a lock file (made by an older version, or
// not a runtime directory at all) is left alone, as is anything not a directory (a symlink
// named like one, say: Lstat, not Stat). It returns the directories it removed.
func sweepRunDirs(base string) []string {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, runDirPrefix) {
			continue
		}
		path := filepath.Join(base, name)
		fi, err := os.Lstat(path)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleRunDirAge {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		if strings.HasSuffix(name, ".removing") {
			if os.RemoveAll(path) == nil {
				removed = append(removed, path)
			}
			continue
		}
		if lock := abandonedLock(path); lock != nil {
			if removeRunDir(path) == nil {
				removed = append(removed, path)
			}
			lock.Close()
		}
	}
	return removed
}

// abandonedLock returns dir's lock file, locked, if its host is gone (the lock could be taken);
// nil if a host holds it or dir has no lock file.
func abandonedLock(dir string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, runDirLock), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		f.Close()
		return nil
	}
	return f
}

// brokerInSockDir says whether the host's broker for a sandboxed shim listens in the shim's own
// socket directory rather than in TMPDIR: when the runtime directory is in /dev/shm, which the
// shim's sandbox covers with its own (see startShim). The broker's socket path is then the
// runtime directory's plus 54 bytes at most ("/shim-N/plugin-dirN/pluginN", N < 2^32): 84 in
// /dev/shm/astrid-run-N, within the 107 a unix socket path may have.
func (h *Host) brokerInSockDir() bool {
	return strings.HasPrefix(h.runDir, shmDir+string(filepath.Separator))
}

// runDirBase is where the runtime directory is made: the TMPDIR the host was given (tmpdir, when
// set), else shm (unless "") when it is a tmpfs that anyone may write and no one may clean of another's
// entries (mode 1777, as /tmp), else the system's temporary directory.
//
// Every shim's start makes a directory and two sockets there and removes them when the shim
// ends. On a disk filesystem each costs an inode allocation, and a 50-capsule boot churns enough
// of them that ext4 spends ~0.6 ms a creation skipping the recently freed inodes
// (recently_deleted), about 2 ms of a shim's start with the host's and the shim's share; on a
// tmpfs they cost a few microseconds. The shim's sandbox binds its socket directory back into the
// private /dev/shm it gets (see sandbox's mount namespace), so the confinement is the same.
func runDirBase(tmpdir, shm string) string {
	if tmpdir != "" {
		return tmpdir
	}
	if shm == "" {
		return os.TempDir()
	}
	var fs unix.Statfs_t
	fi, err := os.Stat(shm)
	if err == nil && fi.IsDir() && fi.Mode()&(os.ModeSticky|0o777) == os.ModeSticky|0o777 &&
		unix.Statfs(shm, &fs) == nil && fs.Type == unix.TMPFS_MAGIC {
		return shm
	}
	return os.TempDir()
}

// removeRunDirPasses bounds removeRunDir's passes over the renamed directory. After the rename
// only a start already inside its last system call can still add an entry, so a second pass
// finds it empty; the bound keeps a directory that cannot be removed (say, made read-only) from
// holding the host's exit.
const removeRunDirPasses = 8

// removeRunDir removes a runtime directory that shims may still be starting into (a spare's
// refill, a restart: a forced exit does not wait for them). os.RemoveAll alone loses that race:
// an entry made after it listed the directory fails the last rmdir, and the directory stays
// behind. So it is first renamed to a name no start uses: every later start fails to make its
// socket directory under the old path, and what a start made as it was renamed goes in the next
// pass. It reports the error of the last pass, nil once the directory is gone.
func removeRunDir(dir string) error {
	gone := dir + ".removing"
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		gone = dir // cannot rename (say, gone already exists): remove in place
	}
	var err error
	for range removeRunDirPasses {
		if err = os.RemoveAll(gone); err == nil {
			return nil
		}
	}
	return fmt.Errorf("remove the runtime directory %s: %w", dir, err)
}
