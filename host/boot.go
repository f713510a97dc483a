package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/astrid-go/astrid/host/internal/depgraph"
	"github.com/astrid-go/astrid/host/manifest"
)

// Capsule is one capsule for Boot: its manifest and the options of its load.
type Capsule struct {
	Manifest *manifest.Manifest
	Options  LoadOptions
}

// DefaultReadyTimeout is how long Boot waits by default for each run-loop capsule to signal
// ready (Config.ReadyTimeout). Upstream waits 500 ms after an in-process load; a shim's run
// loop starts in another process once the load has answered, which on a loaded machine takes
// longer, so the default leaves it more time. Capsules without a run loop are ready once loaded.
const DefaultReadyTimeout = 5 * time.Second

// BootReport is what Boot did.
type BootReport struct {
	// Outcomes[k] is the outcome of the k-th capsule given to Boot.
	Outcomes []LoadOutcome
	// Order is the boot order, as indices of the capsules given: dependency order, or the order
	// given when the imports form a cycle, with the uplink capsules moved first. Capsules start
	// in this order as their providers finish loading, several at once.
	Order []int
	// Cycle is the dependency cycle (an error naming every capsule in it) when the capsules'
	// imports form one; Boot then followed the order it was given. Nil otherwise.
	Cycle error
}

// Loaded counts the capsules that loaded (are Ready or were, if they have failed since).
func (r BootReport) Loaded() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Err == nil && o.Instance != nil {
			n++
		}
	}
	return n
}

// Boot loads caps as upstream Astrid's kernel boots its capsules, loading in parallel where the
// order allows:
//
//  1. The capsules are sorted by their [imports] and [exports] (Kahn's algorithm, upstream's
//     rules; see package depgraph). When the imports form a cycle the cycle is logged as an
//     error naming every capsule in it and the order given stands.
//  2. The imports are checked as upstream checks them: an interface several capsules export is a
//     warning; a required import nothing exports is an error (the capsule still loads); an
//     optional one is logged as info.
//  3. The uplink capsules ([capabilities] uplink = true) go first: they load, several at once,
//     and Boot waits for each to be ready (a run-loop capsule signals it, bounded by
//     Config.ReadyTimeout; the others are ready once loaded) before any other capsule starts.
//  4. Then the rest: a capsule starts once every capsule before it in the order that exports an
//     interface it imports has loaded and is ready, or has failed (its import is then logged as
//     not satisfied, and it loads anyway). At most loadConcurrency capsules load at once.
//  5. Once every capsule has loaded and is ready (or failed, or timed out), Boot publishes
//     astrid.v1.capsules_loaded.
//
// A capsule is added to the host (Instances, its astrid.v1.capsule.loading event) when its load
// starts, so each provider is listed before its consumers, and Shutdown, which stops the newest
// first, stops consumers before their providers.
//
// When ctx ends, no further capsule starts (each gets ctx's error in its outcome), the loads and
// waits under way end early, Boot returns once they have, and astrid.v1.capsules_loaded is not
// published. What did load stays loaded until Shutdown.
func (h *Host) Boot(ctx context.Context, caps []Capsule) BootReport {
	rep := h.boot(ctx, caps)
	if ctx.Err() == nil {
		h.CapsulesLoaded()
	}
	return rep
}

// boot is Boot without its last step (astrid.v1.capsules_loaded), for capsules loaded into a
// running host (astrid-host load).
func (h *Host) boot(ctx context.Context, caps []Capsule) BootReport {
	ms := make([]*manifest.Manifest, len(caps))
	for k, c := range caps {
		ms[k] = c.Manifest
	}
	g := depgraph.New(ms)
	var rep BootReport
	var deps [][]int
	rep.Order, deps, rep.Cycle = bootOrder(g, ms)
	if rep.Cycle != nil {
		h.log.Error("dependency cycle in capsules, falling back to discovery order", "error", rep.Cycle)
	}
	h.checkImports(g, ms)
	rep.Outcomes = make([]LoadOutcome, len(caps))
	done := make([]bool, len(caps))
	starting := func(k int) { h.checkProviders(g, ms, k, rep.Outcomes, done) }
	h.schedule(ctx, caps, rep.Order, deps, true, rep.Outcomes, done, starting)
	return rep
}

// bootOrder is the order Boot starts ms in, and what each one waits for: dependency order (the
// order given when the imports form a cycle, which is returned) with the uplinks moved first,
// the relative order of each partition kept (upstream's partition). deps[k] are the capsules k
// waits for: its providers that come before it (all of them, unless a cycle put some after it)
// and, unless it is an uplink, every uplink.
func bootOrder(g *depgraph.Graph, ms []*manifest.Manifest) (order []int, deps [][]int, cycle error) {
	n := len(ms)
	sorted, cycle := g.Sort()
	if cycle != nil {
		sorted = make([]int, n)
		for k := range sorted {
			sorted[k] = k
		}
	}
	isUplink := func(k int) bool { return ms[k].Capabilities.Uplink }
	uplinks := slices.DeleteFunc(slices.Clone(sorted), func(k int) bool { return !isUplink(k) })
	order = slices.Concat(uplinks, slices.DeleteFunc(slices.Clone(sorted), isUplink))
	pos := make([]int, n)
	for p, k := range order {
		pos[k] = p
	}
	deps = make([][]int, n)
	for k := range ms {
		for _, p := range g.Providers(k) {
			if pos[p] < pos[k] {
				deps[k] = append(deps[k], p)
			}
		}
		if !isUplink(k) {
			deps[k] = append(deps[k], uplinks...)
		}
		slices.Sort(deps[k])
		deps[k] = slices.Compact(deps[k])
	}
	return order, deps, cycle
}

// checkProviders logs, as capsule k starts, each of its imports that every provider failed to
// load: its import is then unmet, as one nothing exports is (checkImports), and it loads anyway.
// An import a provider still to load may meet (one a cycle put after k) is not reported.
func (h *Host) checkProviders(g *depgraph.Graph, ms []*manifest.Manifest, k int, out []LoadOutcome, done []bool) {
	for _, imp := range g.Imports[k] {
		if imp.Self || len(imp.Providers) == 0 {
			continue // satisfied by itself, or already reported by checkImports
		}
		loaded, pending := false, false
		for _, p := range imp.Providers {
			loaded = loaded || (done[p] && out[p].Err == nil)
			pending = pending || !done[p]
		}
		if loaded || pending {
			continue
		}
		var failed []string
		for _, p := range imp.Providers {
			failed = append(failed, ms[p].ID())
		}
		h.unsatisfied(ms[k].ID(), imp, "every capsule that exports it failed to load", "providers", failed)
	}
}

// checkImports logs upstream's boot checks of ms's imports and exports.
func (h *Host) checkImports(g *depgraph.Graph, ms []*manifest.Manifest) {
	for _, d := range g.Duplicates() {
		h.log.Warn("several capsules export the same interface: both handle its events", "interface", d.String(), "providers", d.Providers)
	}
	satisfied, warnings := 0, 0
	for k, imps := range g.Imports {
		for _, imp := range imps {
			if imp.Satisfied() {
				satisfied++
				continue
			}
			warnings++
			h.unsatisfied(ms[k].ID(), imp, "no capsule exports this interface")
		}
	}
	h.log.Info("boot validation complete", "capsules", len(ms), "imports_satisfied", satisfied, "warnings", warnings)
}

// unsatisfied logs that a capsule's import is not met and why: an error for a required import,
// info for an optional one. The capsule loads either way.
func (h *Host) unsatisfied(capsule string, imp depgraph.Import, why string, kv ...any) {
	args := append([]any{"capsule", capsule, "import", imp.String(), "why", why}, kv...)
	if imp.Optional {
		h.log.Info("optional import not satisfied: the capsule boots with reduced functionality", args...)
		return
	}
	h.log.Error("required import not satisfied: the capsule loads without it", args...)
}

// bootStep is what a load goroutine tells schedule: its load ended (its slot is free), or it is
// done (loaded and ready, or failed, or its wait ended): its dependents may start.
type bootStep struct {
	k      int
	loaded bool
}

// schedule loads caps: capsule k starts once every capsule of deps[k] is done, those whose
// dependencies are done starting lowest position in order first, at most loadConcurrency loading
// at once. A capsule is done when its load has ended and, with waitReady, a loaded one has
// signalled ready or its wait (Config.ReadyTimeout) has ended. starting, if set, is called just
// before capsule k starts. out[k] receives capsule k's outcome, and done[k] is set as it is done
// (out and done are read and written on schedule's goroutine only, and by starting). deps[k] must
// come before k in order.
//
// When ctx ends, no further capsule starts (out[k] gets ctx's error), and schedule returns once
// the loads and waits under way have ended.
func (h *Host) schedule(ctx context.Context, caps []Capsule, order []int, deps [][]int, waitReady bool, out []LoadOutcome, done []bool, starting func(k int)) {
	n := len(caps)
	pos := make([]int, n)
	for p, k := range order {
		pos[k] = p
	}
	pending := make([]int, n)
	dependents := make([][]int, n)
	for k, ds := range deps {
		pending[k] = len(ds)
		for _, d := range ds {
			dependents[d] = append(dependents[d], k)
		}
	}
	// ready holds the capsules whose dependencies are done, by position in order.
	var ready []int
	enqueue := func(k int) {
		i, _ := slices.BinarySearchFunc(ready, pos[k], func(r, p int) int { return pos[r] - p })
		ready = slices.Insert(ready, i, k)
	}
	for _, k := range order {
		if pending[k] == 0 {
			enqueue(k)
		}
	}
	started := make([]bool, n)
	markDone := func(k int) {
		done[k] = true
		for _, d := range dependents[k] {
			if pending[d]--; pending[d] == 0 {
				enqueue(d)
			}
		}
	}
	// Every shim starts at once, in the background (bounded by loadConcurrency), while the
	// loads follow the order: a capsule's start is then a load, not a process start.
	reserve := make([]Capsule, 0, n)
	for _, k := range order {
		reserve = append(reserve, caps[k])
	}
	h.spares.hold() // the spares reserved here are the loads' own: no refill until the end
	h.spares.reserve(reserve)
	defer h.spares.release()
	steps := make(chan bootStep)
	limit := loadConcurrency()
	loading, outstanding := 0, 0
	for {
		for ctx.Err() == nil && loading < limit && len(ready) > 0 {
			k := ready[0]
			ready = ready[1:]
			started[k] = true
			if starting != nil {
				starting(k)
			}
			c := caps[k]
			inst, err := h.addInstance(c.Manifest, c.Options, nil)
			if err != nil {
				out[k].Err = err
				markDone(k)
				continue
			}
			loading++
			outstanding++
			go func() {
				res, err := h.finishLoad(ctx, inst, c.Options)
				out[k] = LoadOutcome{Instance: inst, Result: res, Err: err}
				steps <- bootStep{k: k, loaded: true}
				if err == nil && waitReady {
					h.awaitReady(ctx, inst)
				}
				steps <- bootStep{k: k}
			}()
		}
		if outstanding == 0 {
			break
		}
		s := <-steps
		if s.loaded {
			loading--
			continue
		}
		outstanding--
		markDone(s.k)
	}
	for k := range caps {
		if started[k] {
			continue
		}
		err := ctx.Err()
		if err == nil {
			err = errors.New("a capsule it depends on never finished loading") // deps[k] not before k in order
		}
		out[k].Err = fmt.Errorf("load capsule %s: %w", caps[k].Manifest.ID(), err)
	}
}

// awaitReady waits, bounded by Config.ReadyTimeout, for a loaded run-loop capsule to signal
// ready, and logs it if it does not (unless ctx ended: the boot is being abandoned).
func (h *Host) awaitReady(ctx context.Context, inst *Instance) {
	rctx, cancel := context.WithTimeout(ctx, h.cfg.ReadyTimeout)
	defer cancel()
	err := inst.WaitReady(rctx)
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, context.DeadlineExceeded):
		inst.log.Warn("run-loop capsule did not signal ready in time; booting on", "timeout", h.cfg.ReadyTimeout)
	default:
		inst.log.Error("run-loop capsule ended before it signalled ready", "error", err)
	}
}
