// Package rundir owns STATE/run, the directory of a running host's sockets for its clients (the
// control socket, the CLI socket and their token and lock): one rule for where it is and what it
// must be, used by every socket that lives there.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Name is the directory's name under the state directory.
const Name = "run"

// Path is STATE/run.
func Path(stateDir string) string { return filepath.Join(stateDir, Name) }

// Ensure creates STATE/run (0700) if need be and checks that it is a real directory (not a
// symlink or a file) owned by this user; its mode is made 0700 whatever it was. It returns its
// path.
func Ensure(stateDir string) (string, error) {
	if stateDir == "" {
		return "", errors.New("no state directory (--state) for the host's sockets")
	}
	dir := Path(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create the runtime directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("runtime directory %s is not a directory (a symlink or a file); remove it", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("runtime directory %s is not owned by this user (uid %d); it must be the host user's own, mode 0700", dir, os.Geteuid())
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("make the runtime directory private: %w", err)
	}
	return dir, nil
}
