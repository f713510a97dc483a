package kvstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// File names in the state directory: the database, and the pid of the process that holds it
// (written once the lock is taken, so that a second host can say who holds it).
const (
	FileName    = "kv.db"
	PidFileName = "kv.pid"
)

// maxPidFileBytes bounds what is read of a pid file.
const maxPidFileBytes = 32

// LockedError says that another host holds the state directory's KV store.
type LockedError struct {
	StateDir string
	Pid      int // the holder's pid as its pid file says, 0 when unknown
}

func (e *LockedError) Error() string {
	holder := "another host"
	if e.Pid > 0 {
		holder = fmt.Sprintf("another host (pid %d)", e.Pid)
	}
	return fmt.Sprintf("the KV store of state directory %s is held by %s: only one host may use a state directory's KV store at a time; stop that host or use another state directory",
		e.StateDir, holder)
}

// Lazy opens a state directory's store on first use, so that a host whose capsules never use
// the KV never takes its lock. Its methods are safe for concurrent use.
type Lazy struct {
	stateDir string

	mu     sync.Mutex
	store  *Store
	closed bool
}

// NewLazy returns the store of stateDir (STATE/kv.db), not yet opened.
func NewLazy(stateDir string) *Lazy { return &Lazy{stateDir: stateDir} }

// Path is the database file.
func (l *Lazy) Path() string { return filepath.Join(l.stateDir, FileName) }

// Store opens the store if it is not open yet and returns it. When another process holds it,
// the error is a *LockedError, within about LockTimeout; a later call tries again.
func (l *Lazy) Store() (*Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.store != nil {
		return l.store, nil
	}
	if err := os.MkdirAll(l.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("KV store: %w", err)
	}
	s, err := Open(l.Path())
	if errors.Is(err, ErrLocked) {
		return nil, &LockedError{StateDir: l.stateDir, Pid: readPid(filepath.Join(l.stateDir, PidFileName))}
	}
	if err != nil {
		return nil, fmt.Errorf("KV store: %w", err)
	}
	// Best effort: the pid only makes a second host's error more helpful.
	_ = writePid(filepath.Join(l.stateDir, PidFileName), os.Getpid())
	l.store = s
	return s, nil
}

// Opened reports whether the store is open.
func (l *Lazy) Opened() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.store != nil
}

// Close closes the store if it was opened (releasing its lock and removing the pid file); later
// calls of Store fail with ErrClosed.
func (l *Lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.store == nil {
		return nil
	}
	os.Remove(filepath.Join(l.stateDir, PidFileName))
	err := l.store.Close()
	l.store = nil
	return err
}

// writePid replaces the pid file atomically (a reader never sees half of it).
func writePid(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readPid reads a pid file, 0 when it is missing or not a pid.
func readPid(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPidFileBytes))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
