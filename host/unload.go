package host

import (
	"context"
	"fmt"
	"slices"
)

// Unload stops the capsule named id and removes it from the host, as an operator asks
// (astrid-host unload): its shim ends, its subscriptions and interceptors with it, a restart
// pending for it gives up, and it is no longer listed (Instances, status). A capsule still
// loading is refused (unload it once it is ready or has failed); so is any while the host shuts
// down. What imports from the capsule keeps running, and its calls to the capsule fail.
func (h *Host) Unload(ctx context.Context, id string) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("unload %s: the host is shutting down", id)
	}
	k := slices.IndexFunc(h.instances, func(i *Instance) bool { return i.ID() == id })
	if k < 0 {
		h.mu.Unlock()
		_, err := h.running(id)
		return err
	}
	inst := h.instances[k]
	if st, _ := inst.State(); st == StateLoading {
		h.mu.Unlock()
		return fmt.Errorf("unload %s: the capsule is loading; unload it once it is ready or has failed", id)
	}
	inst.unloaded.Store(true)
	h.instances = slices.Delete(h.instances, k, k+1)
	h.mu.Unlock()
	inst.log.Info("unloading the capsule, as the operator asked")
	inst.Stop(ctx)
	return nil
}
