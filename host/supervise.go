package host

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/metrics"
)

// TopicCapsuleRestarted is published when a crashed capsule has been loaded again.
const TopicCapsuleRestarted = "astrid.v1.capsule.restarted"

// restartJitter spreads restarts of capsules that crashed together: each delay is the backoff
// plus or minus up to 10%.
const restartJitter = 0.10

// restartEvent is the data of astrid.v1.capsule.restarted.
type restartEvent struct {
	CapsuleID string `json:"capsule_id"`
	Instance  string `json:"instance"`
	Previous  string `json:"previous_instance"`
	Attempt   int    `json:"attempt"`
	Reason    string `json:"reason"`
}

// restartDelay is the wait before restart attempt n (from 1): the backoff doubling with each
// attempt up to the maximum, with jitter.
func restartDelay(r manifest.Restart, n int) time.Duration {
	d := r.Backoff
	for k := 1; k < n && d < r.MaxBackoff; k++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	jitter := 1 + restartJitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * jitter)
}

// superviseCrash restarts a crashed instance as its [restart] table says: never; or, for
// on-failure and always, after the backoff, as long as the capsule's budget of max_attempts
// restarts lasts. The budget is counted across restarts, so a crash loop ends with the capsule
// Failed, saying why.
func (h *Host) superviseCrash(inst *Instance, reason string) {
	r := inst.manifest.Restart
	if r.Policy == manifest.RestartNever {
		return
	}
	if !h.listed(inst) {
		// A reload's next instance that crashed before it took over (the reload fails and the
		// previous one goes on), or a replaced one that crashed as it was being retired.
		inst.log.Warn("the capsule instance crashed while it was not the capsule's current one; not restarted")
		return
	}
	attempt := inst.restarts + 1
	if attempt > r.MaxAttempts {
		inst.setReason(reason + "; not restarted: its restart budget of " + strconv.Itoa(r.MaxAttempts) + " attempts is spent")
		inst.log.Error("capsule not restarted: restart budget spent", "attempts", r.MaxAttempts)
		return
	}
	delay := restartDelay(r, attempt)
	inst.log.Warn("capsule crashed; restarting", "attempt", attempt, "of", r.MaxAttempts, "in", delay)
	// Shutdown sets closed before it waits for restarts: checking it and counting this restart
	// under the same lock means no restart is added once Shutdown waits.
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.restarts.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.restarts.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.closing.Done():
			return
		}
		// One replacement of a capsule at a time: a reload under way finishes first, and if it
		// replaced the crashed instance there is nothing left to restart.
		unlock, err := h.replacing.lock(h.closing, inst.ID())
		if err != nil {
			return
		}
		defer unlock()
		inst.Stop(context.Background()) // release what is left of the crashed instance
		if !h.listed(inst) {
			inst.log.Info("not restarted: the capsule was reloaded meanwhile")
			return
		}
		if inst.unloaded.Load() {
			return // unloaded meanwhile (addInstance checks again, under the host's lock)
		}
		h.metrics.Restart(inst.ID(), inst.restartClass())
		next, _, err := h.loadInstance(h.closing, inst.manifest, inst.opts, inst)
		if err != nil {
			// The failed load crashed nothing (it never ran): count it and try again.
			inst.log.Error("restart failed", "attempt", attempt, "error", err)
			if next != nil {
				h.superviseCrash(next, err.Error())
			}
			return
		}
		h.publishEvent(TopicCapsuleRestarted, restartEvent{CapsuleID: inst.ID(), Instance: next.ipc.sourceID,
			Previous: inst.ipc.sourceID, Attempt: attempt, Reason: reason})
	}()
}

// restartClass is the reason class (metrics.CrashReasons) of what the instance's restart
// replaces: its crash, or metrics.CrashLoadFailed for an instance that failed to load.
func (i *Instance) restartClass() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.crashClass == "" {
		return metrics.CrashLoadFailed
	}
	return i.crashClass
}
