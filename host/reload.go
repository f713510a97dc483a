package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/shared/logtext"
)

// TopicCapsuleReloaded is published when a reload has replaced a capsule's instance
// (reloadEvent is its data).
const TopicCapsuleReloaded = "astrid.v1.capsule.reloaded"

// ReloadDrainTimeout bounds how long Reload lets the previous instance finish what it was given
// before the swap (the messages it had received, the interceptor messages queued for it, the call
// it was running) before it stops it: 5 s.
const ReloadDrainTimeout = 5 * time.Second

// reloadEvent is the data of astrid.v1.capsule.reloaded.
type reloadEvent struct {
	CapsuleID string `json:"capsule_id"`
	Instance  string `json:"instance"`
	Previous  string `json:"previous_instance"`
	Reloads   int    `json:"reloads"`
}

// ErrNotLoaded is wrapped by Reload's error when no capsule of the name is loaded.
var ErrNotLoaded = errors.New("no such capsule is loaded")

// Reload replaces the running instance of the capsule named name (its package.name) with a new
// one loaded from the capsule's directory as it is now, without losing what is queued for it:
//
//  1. The capsule's Capsule.toml is read and validated again; it must keep its package.name. An
//     installed capsule (the store, the workspace's .astrid/capsules) has its meta.json read
//     again and its module verified against it, as at boot: a module that does not match its
//     meta.json (tampered, or replaced without `astrid-host install`) is refused.
//  2. The new instance is loaded (its module compiled through the module cache, or its cached
//     artefact used) with the options of the previous load. Each bus subscription it makes for
//     a pattern the previous instance holds takes that subscription over, queue and counters
//     included, and the previous instance's handle stops receiving (see ipc_takeover.go).
//  3. A run-loop capsule's new instance must signal ready within Config.ReadyTimeout.
//  4. The new instance takes the previous one's place (Instances, its interceptors, status,
//     its restart count; Status.Reloads counts the reloads), then the previous instance is
//     given up to ReloadDrainTimeout to finish what it had received and is stopped, and
//     astrid.v1.capsule.reloaded is published.
//
// When any step fails, the new instance is stopped, whatever it took over goes back to the
// previous instance, which goes on serving, and the error says why. Reloads and restarts of one
// capsule run one at a time; Shutdown ends a reload under way (it fails) and waits for it.
func (h *Host) Reload(ctx context.Context, name string) (*Instance, LoadResult, error) {
	if h.current(name) == nil {
		return nil, LoadResult{}, h.notLoaded(name)
	}
	// Shutdown waits for replacements (restarts and reloads) before it stops the instances, and
	// its closing ends this one's waits.
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, LoadResult{}, errors.New("host: shutting down")
	}
	h.restarts.Add(1)
	h.mu.Unlock()
	defer h.restarts.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.closing, cancel)
	defer stop()

	unlock, err := h.replacing.lock(ctx, name)
	if err != nil {
		return nil, LoadResult{}, fmt.Errorf("reload %s: waiting for the reload or restart under way: %w", name, err)
	}
	defer unlock()
	old := h.current(name) // a restart may have replaced it meanwhile
	if old == nil {
		return nil, LoadResult{}, h.notLoaded(name)
	}
	m, opts, err := h.reloadManifest(old)
	if err != nil {
		err = fmt.Errorf("reload %s: %w; the running instance goes on", name, err)
		old.log.Error("reload refused", "error", logtext.Escape(err.Error()))
		return nil, LoadResult{}, err
	}
	next := h.newInstance(m, opts)
	next.restarts, next.lastFailure = old.restarts, old.Status().LastFailure
	next.reloads = old.reloads + 1
	if st, _ := old.State(); st == StateReady {
		next.ipc.lender = old.ipc
	}
	h.mu.Lock()
	h.pending = append(h.pending, next)
	h.mu.Unlock()
	next.announce()

	res, err := h.finishLoad(ctx, next, next.opts)
	if err == nil {
		rctx, rcancel := context.WithTimeout(ctx, h.cfg.ReadyTimeout)
		err = next.WaitReady(rctx)
		rcancel()
	}
	if err == nil {
		err = h.swap(old, next)
	}
	if err != nil {
		// The new instance gives back what it took over as it stops.
		next.Stop(context.Background())
		h.mu.Lock()
		h.pending = slices.DeleteFunc(h.pending, func(i *Instance) bool { return i == next })
		h.mu.Unlock()
		err = fmt.Errorf("reload %s: %w; the previous instance goes on", name, err)
		old.log.Error("reload failed", "error", logtext.Escape(err.Error()))
		return nil, res, err
	}
	next.log.Info("capsule reloaded", "previous_instance", old.ipc.sourceID, "instance", next.ipc.sourceID, "reloads", next.reloads)
	h.retire(ctx, old)
	h.publishEvent(TopicCapsuleReloaded, reloadEvent{CapsuleID: name, Instance: next.ipc.sourceID, Previous: old.ipc.sourceID, Reloads: next.reloads})
	return next, res, nil
}

// swap puts next in old's place: it owns what it took over from now on, it is listed instead of
// old, and its interceptors replace old's. It fails when next is no longer Ready (it crashed
// after signalling ready).
func (h *Host) swap(old, next *Instance) error {
	h.mu.Lock()
	defer h.dispatch.refresh()
	defer h.mu.Unlock()
	if st, reason := next.State(); st != StateReady {
		return fmt.Errorf("the new instance is %s: %s", st, reason)
	}
	if !next.ipc.commit() {
		return errors.New("the new instance stopped before it could take over")
	}
	h.pending = slices.DeleteFunc(h.pending, func(i *Instance) bool { return i == next })
	if k := slices.Index(h.instances, old); k >= 0 {
		h.instances[k] = next
	} else {
		h.instances = append(h.instances, next)
	}
	return nil
}

// retire lets the replaced instance finish what it was given before the swap, for at most
// ReloadDrainTimeout (less when ctx ends, at Shutdown), and stops it: a run loop that had
// subscriptions taken over until it asks for more on one of them (it has handled what it
// received), the interceptor messages queued for it until they have run, and a call in progress
// until it ends.
func (h *Host) retire(ctx context.Context, old *Instance) {
	dctx, cancel := context.WithTimeout(ctx, ReloadDrainTimeout)
	defer cancel()
	var exited <-chan struct{}
	if old.proc != nil && old.proc.shim != nil {
		exited = old.proc.shim.Exited.Done()
	}
	if old.ipc.lentAny() {
		select {
		case <-old.ipc.drainedChan():
		case <-exited:
		case <-dctx.Done():
		}
	}
	select {
	case <-old.hookWork.idle():
	case <-exited:
	case <-dctx.Done():
	}
	if dctx.Err() == nil && old.acquireCall(dctx) == nil {
		defer old.releaseCall()
	}
	if dctx.Err() != nil && ctx.Err() == nil {
		old.log.Warn("the replaced instance did not finish in time; stopping it", "timeout", ReloadDrainTimeout)
	}
	old.Stop(context.Background())
}

// reloadManifest reads the capsule's manifest (and, for an installed capsule, its meta.json) for
// a reload, with the options of the running instance's load.
func (h *Host) reloadManifest(old *Instance) (*manifest.Manifest, LoadOptions, error) {
	dir := old.manifest.Dir
	if old.manifest.Path == "" {
		return nil, LoadOptions{}, errors.New("it was loaded from a bare module, not a capsule directory; only a capsule directory can be reloaded")
	}
	m, warnings, err := manifest.Load(dir)
	for _, w := range warnings {
		old.log.Warn("manifest warning", "dir", dir, "problem", logtext.Escape(w.String()))
	}
	if err != nil {
		return nil, LoadOptions{}, fmt.Errorf("invalid manifest in %s: %w", dir, err)
	}
	if m.ID() != old.ID() {
		return nil, LoadOptions{}, fmt.Errorf("the manifest in %s now names the capsule %q; a reload keeps the name %q (stop the host, or unload it and load the directory, to rename it)", dir, m.ID(), old.ID())
	}
	opts := old.opts
	opts.Lifecycle = LifecycleNone
	if opts.Installed != nil {
		meta, err := store.ReadMeta(dir)
		if err != nil {
			return nil, LoadOptions{}, fmt.Errorf("an installed capsule is verified against its %s on reload as at boot: %w", store.MetaName, err)
		}
		opts.Installed = meta
	}
	return m, opts, nil
}

// current is the listed instance of the capsule named name, or nil.
func (h *Host) current(name string) *Instance {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, inst := range h.instances {
		if inst.ID() == name {
			return inst
		}
	}
	return nil
}

// listed reports whether inst is one of the host's instances (not a reload's next instance
// still loading, nor one a reload or restart has replaced).
func (h *Host) listed(inst *Instance) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.instances, inst)
}

// notLoaded is the error for a name no loaded capsule has.
func (h *Host) notLoaded(name string) error {
	var names []string
	for _, inst := range h.Instances() {
		names = append(names, inst.ID())
	}
	loaded := "none"
	if len(names) > 0 {
		loaded = strings.Join(names, ", ")
	}
	return fmt.Errorf("capsule %q: %w (loaded: %s)", name, ErrNotLoaded, loaded)
}

// capsuleLocks serialises the replacements of each capsule's instance. The zero value is ready.
type capsuleLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// lock takes the capsule's lock, waiting until ctx ends at most, and returns its unlock.
func (l *capsuleLocks) lock(ctx context.Context, id string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]chan struct{}{}
	}
	c := l.m[id]
	if c == nil {
		c = make(chan struct{}, 1)
		l.m[id] = c
	}
	l.mu.Unlock()
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// workCount counts work waiting for or running on an instance; idle is closed while it is zero.
type workCount struct {
	mu     sync.Mutex
	n      int
	zeroCh chan struct{} // closed when n drops to 0; nil while nobody waits
}

func (w *workCount) add() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
}

func (w *workCount) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n--
	if w.n == 0 && w.zeroCh != nil {
		close(w.zeroCh)
		w.zeroCh = nil
	}
}

// idle returns a channel closed once no work is counted.
func (w *workCount) idle() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if w.zeroCh == nil {
		w.zeroCh = make(chan struct{})
	}
	return w.zeroCh
}
