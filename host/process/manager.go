package process

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/sandbox"
)

// Limits and sizes of the process host functions.
const (
	// MaxCaptureBytes is how much of each stream a synchronous spawn keeps: the start of the
	// output, as much of it as takes at most this many bytes in the result's JSON string (a
	// control character takes 2 or 6 bytes there, an invalid byte the 3 of U+FFFD). So a spawn
	// result is at most 2×MaxCaptureBytes plus a few hundred bytes, whatever the output.
	MaxCaptureBytes = 10 << 20
	// RingBytes is the size of each of a background process's two output rings (the newest
	// bytes are kept).
	RingBytes = 1 << 20
	// MaxStdinWrite is the most data one write_stdin may carry.
	MaxStdinWrite = 1 << 20
	// MaxSpawnRequestBytes caps a spawn or spawn_background request, as upstream.
	MaxSpawnRequestBytes = 10 << 20
	// MaxIDRequestBytes caps the requests that carry only an id and small fields (read_logs,
	// kill, wait, signal), as upstream caps read_logs and kill.
	MaxIDRequestBytes = 256
	// MaxWriteStdinRequestBytes caps a write_stdin request: room for MaxStdinWrite bytes of data
	// even if JSON escaping makes every byte six.
	MaxWriteStdinRequestBytes = 6*MaxStdinWrite + 256
	// MaxEnvEntries and MaxEnvValueBytes bound a request's env.
	MaxEnvEntries    = 256
	MaxEnvValueBytes = 64 << 10
	// MaxTimeoutMS is the longest timeout_ms spawn and wait accept (a day).
	MaxTimeoutMS = 24 * 60 * 60 * 1000
	// DefaultMaxBackground is the manifest's default [limits] max_processes.
	DefaultMaxBackground = 8
	// PidsLimit is the cgroup pids.max of each process tree: enough for a parallel build, few
	// enough to stop a fork bomb.
	PidsLimit = 256
	// RetainedExited is how many exited background processes whose end was already reported
	// are kept for a later kill, wait or read_logs (they no longer count toward the limit).
	RetainedExited = 64
	// DrainGrace is how long the output pipes are still read after a tree was killed. Only a
	// process that escaped the tree kill (possible without a pid namespace) can keep a pipe open
	// longer; its output after that is not read.
	DrainGrace = time.Second

	ringReadSize    = 4 << 10  // upstream's chunk size
	captureReadSize = 64 << 10 // a whole pipe buffer: fewer wake-ups for big outputs
)

// passThroughEnv are the host variables a child gets (docs/abi.md#processes).
var passThroughEnv = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"}

// ErrClosed is wrapped by the errors of requests made after Close.
var ErrClosed = errors.New("process manager is closed")

// Config is what a Manager needs to know about its capsule instance and the host.
type Config struct {
	// CapsuleID names the capsule in errors and logs; Instance names the instance in logs.
	CapsuleID string
	Instance  string
	// Allowed are the commands the capsule may run ([capabilities] host_process).
	Allowed []string
	// Network keeps the host's network for the processes ([capabilities] process_network).
	Network bool
	// Workspace is the directory processes may write and run in.
	Workspace string
	// Hidden are directories processes may neither read nor write even when they lie in the
	// workspace: the host's state directory (its module cache, which a process able to write
	// would poison for every capsule) and its runtime directory (the shims' sockets). See
	// sandbox.Spec.Hidden; a process the sandbox cannot hide them from (best effort without a
	// mount namespace) is logged at warn level, once per Manager.
	Hidden []string
	// MemoryBytes is the memory limit (swap included) of each process tree, enforced by its
	// cgroup where the sandbox has the cgroup layer ([limits] process_memory); 0 = none. A tree
	// that passes it is killed by the kernel (SIGKILL).
	MemoryBytes int64
	// MaxBackground is the most live background processes ([limits] max_processes; pass the
	// manifest's value, whose default is DefaultMaxBackground). 0 allows none.
	MaxBackground int
	// Sandbox starts every process. Without one every spawn fails.
	Sandbox *sandbox.Sandbox
	// TmpRoot is where each process's private tmp directory is made ("" = os.TempDir()).
	TmpRoot string
	// PassEnv are the host's values of the pass-through variables PATH, LANG, LC_ALL, LC_CTYPE
	// and TZ (see HostPassEnv); other keys are ignored. Its PATH also resolves cmd.
	PassEnv map[string]string
	// Logger receives a debug line per spawn, with the sandbox layers applied (nil = none).
	Logger hclog.Logger
}

// HostPassEnv returns this process's values of the pass-through variables, for Config.PassEnv.
func HostPassEnv() map[string]string {
	env := make(map[string]string, len(passThroughEnv))
	for _, k := range passThroughEnv {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}

// Manager runs and owns the processes of one capsule instance. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg     Config
	log     hclog.Logger
	closing chan struct{} // closed by Close: cancels synchronous spawns

	mu         sync.Mutex
	closed     bool
	nextID     uint64                 // the last id issued; ids are never reused
	table      map[uint64]*background // background processes by id
	reserved   int                    // background slots taken by spawns in progress
	retiredIDs []uint64               // retired entries, oldest first (see RetainedExited)
	live       map[*process]struct{}  // every process not yet reaped, for Close

	supervisors sync.WaitGroup // one per started process, done once it is reaped

	poolOnce sync.Once
	warm     *sandbox.Pool // the instance's warm sandbox helpers, made at the first spawn

	exposedOnce sync.Once // the warning that the sandbox cannot hide Config.Hidden
}

// pool returns the instance's Pool: its processes are one trust domain (they share the
// workspace), so they may share warm helpers.
func (m *Manager) pool() *sandbox.Pool {
	m.poolOnce.Do(func() { m.warm = m.cfg.Sandbox.NewPool(m.tmpRoot(), 0) })
	return m.warm
}

// New returns a Manager for one capsule instance.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cfg.Allowed = slices.Clone(cfg.Allowed)
	return &Manager{
		cfg:     cfg,
		log:     log,
		closing: make(chan struct{}),
		table:   make(map[uint64]*background),
		live:    make(map[*process]struct{}),
	}
}

// Close kills every process tree the Manager started, waits until all are reaped and their
// goroutines have ended, and makes later requests fail with ErrClosed. Synchronous spawns in
// progress return upstream's cancelled result. It may be called more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.closing)
	}
	live := make([]*process, 0, len(m.live))
	for p := range m.live {
		live = append(live, p)
	}
	m.table = make(map[uint64]*background)
	m.retiredIDs = nil
	m.mu.Unlock()

	var errs []error
	for _, p := range live {
		if err := p.killTree(); err != nil {
			errs = append(errs, fmt.Errorf("kill process %d: %w", p.pid, err))
		}
	}
	m.supervisors.Wait()
	if m.cfg.Sandbox != nil {
		if err := m.pool().Close(); err != nil {
			errs = append(errs, fmt.Errorf("end the idle sandbox helpers: %w", err))
		}
	}
	return errors.Join(errs...)
}

// closedError is the error of a request after Close.
func (m *Manager) closedError() error {
	return fmt.Errorf("%w: capsule '%s' is unloading or the host is exiting", ErrClosed, m.cfg.CapsuleID)
}

// Running is how many of the manager's processes have been started and not yet reaped
// (synchronous and background ones), for the host's metrics.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

// forget drops a reaped process from the set Close kills.
func (m *Manager) forget(p *process) {
	m.mu.Lock()
	delete(m.live, p)
	m.mu.Unlock()
}

func (m *Manager) tmpRoot() string {
	if m.cfg.TmpRoot != "" {
		return m.cfg.TmpRoot
	}
	return os.TempDir()
}
