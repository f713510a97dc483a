package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/sandbox"
)

// shmDir is the machine's shared-memory directory: a tmpfs on Linux, world-writable and sticky
// as /tmp is.
const shmDir = "/dev/shm"

// runDirFor makes the host's runtime directory, which holds the per-shim socket directories (and,
// under run, go-plugin's socket directories for the host's services). Unix socket paths are
// limited to 108 bytes, so it does not live in the state directory but in runDirBase.
//
// A shim may write files in its socket directory; in /dev/shm they are memory, which the shim's
// cgroup (its memory limit) is charged for. So the runtime directory goes there only when shims
// have that cgroup, or have no sandbox at all (they may then write wherever the host may).
func runDirFor(sb *sandbox.Sandbox) (string, error) {
	shm := ""
	if sb == nil || sb.Policy() == sandbox.Off || sb.Has(sandbox.LayerCgroup) {
		shm = shmDir
	}
	dir, err := os.MkdirTemp(runDirBase(os.Getenv("TMPDIR"), shm), "astrid-run-")
	if err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	return filepath.Clean(dir), nil
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
