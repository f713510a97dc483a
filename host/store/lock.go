package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockName is the store's lock file, STATE/capsules/.lock. Install, Uninstall and Recover hold
// an exclusive flock(2) on it while they change the store, so two of them never interleave.
const LockName = ".lock"

// ErrBusy is wrapped by the error of an Install, Uninstall or Recover that found the store locked
// by another one. It does not wait: an install's lifecycle hook may run for as long as its
// call_timeout, and a command that hangs silently is worse than one that says why.
var ErrBusy = errors.New("the capsule store is busy")

// storeLock is a held lock on the store.
type storeLock struct{ f *os.File }

// lockStore creates the store directory (0700) if needed and takes its lock without waiting.
func lockStore(stateDir string) (*storeLock, error) {
	dir := Dir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the capsule store: %w", err)
	}
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the capsule store's lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another astrid-host install, upgrade or uninstall is changing %s (it holds %s); try again when it has finished", ErrBusy, dir, path)
		}
		return nil, fmt.Errorf("lock the capsule store %s: %w", path, err)
	}
	return &storeLock{f: f}, nil
}

// unlock releases the lock (closing the descriptor releases the flock).
func (l *storeLock) unlock() { l.f.Close() }
