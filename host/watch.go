package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/shared/logtext"
)

// DefaultWatchDebounce is how long a Watcher waits after the last change to a capsule's files
// before it reloads the capsule (WatchOptions.Debounce): 500 ms, so that an editor's or a
// build's several writes (truncate, write, rename, meta.json then the module) make one reload.
const DefaultWatchDebounce = 500 * time.Millisecond

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Debounce is the quiet time after a change before the reload; <= 0 means
	// DefaultWatchDebounce.
	Debounce time.Duration
	// Reloaded, if set, is called after each reload the watcher started, with its error (nil
	// when it succeeded). For tests and callers that report.
	Reloaded func(name string, err error)
}

// Watcher reloads capsules whose files change (astrid-host run --watch). It watches the
// directories, not the files, of every capsule loaded from a capsule directory: the capsule's
// directory, its module's directory and the directory above (editors and cp replace a file by
// rename, and `astrid-host install` replaces an installed capsule's whole directory). A change
// to a capsule's Capsule.toml, its module or its meta.json, or its directory being replaced,
// reloads it (Host.Reload) once DefaultWatchDebounce has passed without another change. A
// reload that fails leaves the running instance serving; it is logged, and the next change
// tries again. The set of capsules watched follows the host's: it is brought up to date
// whenever a capsule becomes ready.
type Watcher struct {
	h      *Host
	opts   WatchOptions
	fsw    *fsnotify.Watcher
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	files  map[string]string // watched path (a capsule's file or directory) -> capsule name
	timers map[string]*time.Timer
	closed bool
}

// Watch starts a Watcher over the host's capsules. Close it before the host shuts down.
func (h *Host) Watch(opts WatchOptions) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultWatchDebounce
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch capsule files: %w", err)
	}
	w := &Watcher{h: h, opts: opts, fsw: fsw, files: map[string]string{}, timers: map[string]*time.Timer{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	ready := h.bus.Subscribe(TopicCapsulePrefix + StateReady.String())
	w.sync()
	w.wg.Add(2)
	go w.events()
	go w.follow(ready)
	return w, nil
}

// follow brings the watched set up to date whenever a capsule becomes ready.
func (w *Watcher) follow(ready *bus.Subscription) {
	defer w.wg.Done()
	defer ready.Close()
	for {
		if _, err := ready.Recv(w.ctx, 1<<20); err != nil {
			return
		}
		w.sync()
	}
}

// sync watches the directories of every listed capsule loaded from a directory.
func (w *Watcher) sync() {
	files := map[string]string{}
	var dirs []string
	for _, inst := range w.h.Instances() {
		m := inst.Manifest()
		if m.Path == "" {
			continue // a bare module: nothing to reload from
		}
		for _, f := range []string{m.Path, m.WasmPath(), filepath.Join(m.Dir, store.MetaName), m.Dir} {
			files[filepath.Clean(f)] = m.ID()
		}
		dirs = append(dirs, m.Dir, filepath.Dir(m.WasmPath()), filepath.Dir(m.Dir))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.files = files
	for _, d := range dirs {
		// Adding a watched directory again is harmless, and re-adds one replaced by a rename.
		if err := w.fsw.Add(d); err != nil {
			w.h.log.Warn("--watch: cannot watch a capsule directory", "dir", logtext.Escape(d), "error", logtext.Escape(err.Error()))
		}
	}
}

// events turns file events into debounced reloads.
func (w *Watcher) events() {
	defer w.wg.Done()
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			w.mu.Lock()
			name, watched := w.files[filepath.Clean(ev.Name)]
			w.mu.Unlock()
			if watched {
				w.changed(name, ev.Name)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			// An overflow loses events: the capsules whose changes were lost reload at their
			// next change.
			w.h.log.Warn("--watch: file notifications lost", "error", logtext.Escape(err.Error()))
		}
	}
}

// changed (re)starts the capsule's debounce timer.
func (w *Watcher) changed(name, path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if t := w.timers[name]; t != nil && t.Stop() {
		t.Reset(w.opts.Debounce) // still waiting: wait anew
		return
	}
	w.h.log.Debug("--watch: capsule file changed", "capsule", name, "path", logtext.Escape(path))
	w.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(w.opts.Debounce, func() {
		defer w.wg.Done()
		w.mu.Lock()
		if w.timers[name] == t {
			delete(w.timers, name)
		}
		closed := w.closed
		w.mu.Unlock()
		if !closed {
			w.reload(name)
		}
	})
	w.timers[name] = t
}

// reload reloads the capsule, logging how it went.
func (w *Watcher) reload(name string) {
	w.h.log.Info("--watch: capsule changed; reloading", "capsule", name)
	inst, res, err := w.h.Reload(w.ctx, name)
	switch {
	case errors.Is(err, ErrNotLoaded):
		// Unloaded meanwhile: nothing to do.
	case err != nil:
		// Reload logged why; the running instance goes on.
	default:
		w.h.log.Info("--watch: capsule reloaded", "capsule", name, "instance", inst.Status().Instance, "compiled", res.Compiled, "took", res.Took)
	}
	if w.opts.Reloaded != nil {
		w.opts.Reloaded(name, err)
	}
}

// Close stops watching: no reload starts any more, and one under way ends (it fails, leaving
// the running instance). It waits for the watcher's goroutines.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	for name, t := range w.timers {
		if t.Stop() {
			w.wg.Done() // its function will not run
		}
		delete(w.timers, name)
	}
	w.mu.Unlock()
	w.cancel()
	err := w.fsw.Close()
	w.wg.Wait()
	return err
}
