package host

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host/manifest"
)

// DefaultSpareShims is how many shims a host keeps started ahead by default (Config.SpareShims).
const DefaultSpareShims = 1

// shimKeyOf is the key of the shim capsule m needs.
func shimKeyOf(m *manifest.Manifest) shimKey {
	return shimKey{fuel: m.Limits.Fuel > 0, memory: m.Limits.Memory}
}

// shimPool holds spare shims: shims started ahead, in their sandbox, before the capsule they
// will run is known, so that a capsule's start is a load and not a process start (the process
// start, the sandbox helper and the shim's engine are most of a cached capsule's start).
//
// A spare gets exactly the confinement a shim started for its capsule gets: nothing of a shim's
// start depends on its capsule except its key (the engine's fuel setting, the cgroup's memory
// limit; see shimKey), and a capsule only takes a spare of its own key. The capsule's module
// reaches the shim afterwards, on the artefact channel every shim has. A spare has run no guest
// code: each serves one capsule and is never given back. Its log goes to the host's log until a
// capsule takes it, then to the capsule's (lateLogger).
//
// Once a capsule's load has ended the pool starts spares of its key, in the background, until
// it holds Config.SpareShims of them (refill); Boot reserves one spare per capsule it is about to load, so that
// the shims start in parallel while the loads follow the dependency order, and holds the refills
// until it has ended (a start for a later capsule would only slow its last loads). Shutdown kills
// the spares left.
type shimPool struct {
	h      *Host
	target int           // spares to keep per key used (Config.SpareShims)
	starts chan struct{} // bounds the starts under way (loadConcurrency)

	mu     sync.Mutex
	closed bool
	spares map[shimKey][]*spare // oldest first
	wg     sync.WaitGroup       // the starts under way
	// holds counts the boots under way (hold); while there is one, refill only notes the keys
	// it was asked for, in deferred, and release refills them.
	holds    int
	deferred []shimKey
	started  atomic.Int64 // shims the pool has started, for tests
}

// spare is one shim of the pool, started or starting.
type spare struct {
	done   chan struct{} // closed once the start has ended
	p      *shimProcess  // nil if the start failed
	logger *lateLogger
}

func newShimPool(h *Host, target int) *shimPool {
	return &shimPool{h: h, target: target, starts: make(chan struct{}, loadConcurrency()), spares: make(map[shimKey][]*spare)}
}

// reserve makes sure the pool holds a spare, started or starting, for each capsule of caps
// about to load, starting the missing ones in the background (at most loadConcurrency at once,
// in the order of caps).
func (sp *shimPool) reserve(caps []Capsule) {
	need := make(map[shimKey]int)
	var keys []shimKey // in the order of caps
	for _, c := range caps {
		key := shimKeyOf(c.Manifest)
		if need[key] == 0 {
			keys = append(keys, key)
		}
		need[key]++
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, key := range keys {
		for n := len(sp.spares[key]); n < need[key]; n++ {
			if !sp.startLocked(key) {
				return
			}
		}
	}
}

// startLocked starts one spare of key in the background; false once the pool is closed.
func (sp *shimPool) startLocked(key shimKey) bool {
	if sp.closed {
		return false
	}
	s := &spare{done: make(chan struct{}), logger: newLateLogger(sp.h.log.Named("spare-shim"))}
	sp.spares[key] = append(sp.spares[key], s)
	sp.started.Add(1)
	sp.wg.Add(1)
	go func() {
		defer sp.wg.Done()
		defer close(s.done)
		sp.starts <- struct{}{}
		defer func() { <-sp.starts }()
		p, err := sp.h.startShim(key, s.logger)
		if err != nil {
			s.logger.Warn("cannot start a spare shim; capsules start their own", "error", err)
			return
		}
		p.spare = true
		s.p = p
	}()
	return true
}

// refill starts spares of key, in the background, until the pool holds its target of them. A
// load calls it once it has ended, so that the start of the next capsule's shim does not take
// the processor from the load. During a boot (hold) it only notes key: the boot reserved a
// spare for each of its capsules, and a start for a later capsule would take the processor from
// the boot's last loads; release refills once the boot has ended.
func (sp *shimPool) refill(key shimKey) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.holds > 0 {
		if !slices.Contains(sp.deferred, key) {
			sp.deferred = append(sp.deferred, key)
		}
		return
	}
	sp.refillLocked(key)
}

// refillLocked is refill's start of the missing spares of key.
func (sp *shimPool) refillLocked(key shimKey) {
	for n := len(sp.spares[key]); n < sp.target; n++ {
		if !sp.startLocked(key) {
			return
		}
	}
}

// take returns a spare of key, its log now going to logger; nil when there is none to take, or the ones there failed or died (the
// caller starts a shim itself). A spare still starting is waited for: it is further along than
// a new start would be.
func (sp *shimPool) take(ctx context.Context, key shimKey, logger hclog.Logger) (*shimProcess, error) {
	for {
		sp.mu.Lock()
		queue := sp.spares[key]
		if sp.closed || len(queue) == 0 {
			sp.mu.Unlock()
			return nil, nil
		}
		s := queue[0]
		sp.spares[key] = queue[1:]
		sp.mu.Unlock()
		select {
		case <-s.done:
		case <-ctx.Done():
			sp.h.background(func() { killSpares([]*spare{s}) }) // once its start has ended
			return nil, ctx.Err()
		}
		if s.p == nil {
			continue
		}
		if s.p.shim.Exited.Err() != nil { // died while it waited
			s.p.kill()
			continue
		}
		s.logger.handTo(logger)
		return s.p, nil
	}
}

// hold defers refills until release: a boot holds the pool while its capsules load.
func (sp *shimPool) hold() {
	sp.mu.Lock()
	sp.holds++
	sp.mu.Unlock()
}

// release ends a hold. Once no boot holds the pool it kills the spares beyond the pool's target
// (those the boots reserved for capsules that did not take them) and starts the refills the
// boots' loads asked for.
func (sp *shimPool) release() {
	sp.mu.Lock()
	sp.holds--
	if sp.holds > 0 {
		sp.mu.Unlock()
		return
	}
	extra := sp.trimLocked()
	for _, key := range sp.deferred {
		sp.refillLocked(key)
	}
	sp.deferred = nil
	sp.mu.Unlock()
	killSpares(extra)
}

// trimLocked takes the spares beyond the pool's target out of the pool and returns them, to be
// killed (killSpares) once the lock is released.
func (sp *shimPool) trimLocked() []*spare {
	var extra []*spare
	for key, queue := range sp.spares {
		if len(queue) > sp.target {
			extra = append(extra, queue[sp.target:]...)
			sp.spares[key] = queue[:sp.target]
		}
	}
	return extra
}

// close kills every spare, once its start has ended, and keeps new ones from starting.
func (sp *shimPool) close() {
	sp.mu.Lock()
	sp.closed = true
	var all []*spare
	for _, queue := range sp.spares {
		all = append(all, queue...)
	}
	sp.spares = nil
	sp.mu.Unlock()
	killSpares(all)
	sp.wg.Wait()
}

// killSpares kills spares once their starts have ended.
func killSpares(spares []*spare) {
	var wg sync.WaitGroup
	for _, s := range spares {
		wg.Go(func() {
			<-s.done
			if s.p != nil {
				s.p.kill()
			}
		})
	}
	wg.Wait()
}

// lateLogger is a spare shim's logger: the host's until a capsule takes the shim (handTo), the
// capsule's from then on. go-plugin names its logger once when the shim starts (the name of the
// shim's stderr relay), so every logger derived from a lateLogger derives again from the
// capsule's once it is set.
type lateLogger struct {
	hclog.Logger                               // the host's, and what is not logging
	target       *atomic.Pointer[hclog.Logger] // the capsule's, once set
	derive       func(hclog.Logger) hclog.Logger
}

func newLateLogger(l hclog.Logger) *lateLogger {
	return &lateLogger{Logger: l, target: new(atomic.Pointer[hclog.Logger]), derive: func(l hclog.Logger) hclog.Logger { return l }}
}

// handTo sends what is logged from now on to l.
func (l *lateLogger) handTo(t hclog.Logger) { l.target.Store(&t) }

// current is the logger a line goes to now.
func (l *lateLogger) current() hclog.Logger {
	if t := l.target.Load(); t != nil {
		return l.derive(*t)
	}
	return l.Logger
}

func (l *lateLogger) Log(level hclog.Level, msg string, args ...any) {
	l.current().Log(level, msg, args...)
}
func (l *lateLogger) Trace(msg string, args ...any) { l.current().Trace(msg, args...) }
func (l *lateLogger) Debug(msg string, args ...any) { l.current().Debug(msg, args...) }
func (l *lateLogger) Info(msg string, args ...any)  { l.current().Info(msg, args...) }
func (l *lateLogger) Warn(msg string, args ...any)  { l.current().Warn(msg, args...) }
func (l *lateLogger) Error(msg string, args ...any) { l.current().Error(msg, args...) }

func (l *lateLogger) derived(f func(hclog.Logger) hclog.Logger) *lateLogger {
	prev := l.derive
	return &lateLogger{Logger: f(l.Logger), target: l.target, derive: func(t hclog.Logger) hclog.Logger { return f(prev(t)) }}
}

func (l *lateLogger) Named(name string) hclog.Logger {
	return l.derived(func(t hclog.Logger) hclog.Logger { return t.Named(name) })
}

func (l *lateLogger) ResetNamed(name string) hclog.Logger {
	return l.derived(func(t hclog.Logger) hclog.Logger { return t.ResetNamed(name) })
}

func (l *lateLogger) With(args ...any) hclog.Logger {
	return l.derived(func(t hclog.Logger) hclog.Logger { return t.With(args...) })
}

// WaitSpares waits until the spare shims being started (Config.SpareShims), and the shim
// spawner if it is starting, have started, or failed to. A host does not need it; a benchmark
// does, so that a start in the background is not counted against what it measures next.
func (h *Host) WaitSpares() {
	if h.spawner.starting != nil {
		<-h.spawner.starting
	}
	sp := h.spares
	sp.mu.Lock()
	var all []*spare
	for _, queue := range sp.spares {
		all = append(all, queue...)
	}
	sp.mu.Unlock()
	for _, s := range all {
		<-s.done
	}
}
