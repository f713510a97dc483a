package host

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
)

// LifecyclePhase is the lifecycle hook an instance is loaded for (LoadOptions.Lifecycle).
type LifecyclePhase int

// The lifecycle phases. LifecycleNone is every ordinary load.
const (
	LifecycleNone LifecyclePhase = iota
	// LifecycleInstall runs astrid_install, with an empty input: the first install of a capsule.
	LifecycleInstall
	// LifecycleUpgrade runs astrid_upgrade, with the previous version as input: an install over
	// an installed capsule (the same version included, as upstream).
	LifecycleUpgrade
)

func (p LifecyclePhase) String() string {
	switch p {
	case LifecycleInstall:
		return "install"
	case LifecycleUpgrade:
		return "upgrade"
	}
	return "none"
}

// Export is the guest export the phase calls: astrid_install, astrid_upgrade, or "".
func (p LifecyclePhase) Export() string {
	switch p {
	case LifecycleInstall:
		return "astrid_install"
	case LifecycleUpgrade:
		return "astrid_upgrade"
	}
	return ""
}

// LifecycleFor is upstream's rule for which hook an install runs: with no previous meta.json it
// is an install (input ""), otherwise an upgrade whose input is the previous version.
func LifecycleFor(previous *store.Meta) (LifecyclePhase, string) {
	if previous == nil {
		return LifecycleInstall, ""
	}
	return LifecycleUpgrade, previous.Version
}

// Lifecycle is the lifecycle hook the instance was loaded for; LifecycleNone for an ordinary
// load.
func (i *Instance) Lifecycle() LifecyclePhase { return i.opts.Lifecycle }

// RunLifecycle runs an installed capsule's lifecycle hook, as `astrid-host install` does once the
// capsule is in the store: it loads m in its own shim like any load (its module verified against
// meta, LoadOptions.Lifecycle set to the phase LifecycleFor(previous) gives, and never restarted:
// a crash fails the hook), calls the phase's export if the module exports it, with the previous
// version (or "") as input, and stops the instance, which then leaves Instances. timeout, when
// positive, replaces the capsule's [limits] call_timeout for the load and the hook. It returns
// the export it called, "" when the module exports none. An error (the capsule does not load, or
// the hook fails) is what makes install roll back.
func (h *Host) RunLifecycle(ctx context.Context, m *manifest.Manifest, meta, previous *store.Meta, timeout time.Duration) (string, error) {
	phase, input := LifecycleFor(previous)
	once := *m
	once.Restart.Policy = manifest.RestartNever
	inst, _, err := h.Load(ctx, &once, LoadOptions{Installed: meta, Lifecycle: phase, CallTimeout: timeout})
	if inst != nil {
		// The hook's instance is no capsule the host runs: gone from Instances once it ends.
		defer func() {
			inst.Stop(context.Background())
			h.forget(inst)
		}()
	}
	if err != nil {
		return "", err
	}
	export := phase.Export()
	if !slices.Contains(inst.Exports(), export) {
		inst.log.Debug("the capsule does not export its lifecycle hook; nothing to run", "export", export)
		return "", nil
	}
	inst.log.Info("running lifecycle hook", "export", export, "previous_version", input)
	if _, err := inst.Call(ctx, export, []byte(input), 0); err != nil {
		return export, fmt.Errorf("%s: %w", export, err)
	}
	return export, nil
}

// forget removes a stopped instance from the host's list.
func (h *Host) forget(inst *Instance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.instances = slices.DeleteFunc(h.instances, func(i *Instance) bool { return i == inst })
}
