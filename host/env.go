package host

import (
	"strings"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/envconfig"
)

// TopicOnboardingRequired is published when a capsule loads with [env] values missing; its
// payload is upstream's onboarding_required (see package envconfig).
const TopicOnboardingRequired = envconfig.TopicOnboardingRequired

// guestConfig is the configuration the instance's guest reads with config_get and
// astrid_get_config: its [env] resolved by envconfig.Resolve from the operator's values for this
// load (opts.Config), the values saved in STATE/config/env/NAME.env.json, and the [env]
// defaults. Every load resolves it afresh, restarts included, so a value saved with
// `astrid-host config` reaches the next load. A saved file that cannot be read fails the load
// with the reason. When values are missing, the guest reads "" for them and the host publishes
// one astrid.v1.onboarding.required event naming them, before the capsule is Ready.
func (h *Host) guestConfig(inst *Instance, opts LoadOptions) (map[string]string, error) {
	m := inst.manifest
	var saved map[string]string
	if len(m.Env) > 0 && h.cfg.StateDir != "" {
		var err error
		if saved, err = envconfig.ReadAll(h.cfg.StateDir, m); err != nil {
			return nil, err
		}
	}
	r := envconfig.Resolve(m, saved, opts.Config)
	for _, w := range r.Warnings {
		inst.log.Warn(w)
	}
	if len(r.Ignored) > 0 {
		inst.log.Debug("saved [env] keys the capsule does not declare are ignored", "keys", strings.Join(r.Ignored, ", "))
	}
	if len(r.Missing) > 0 {
		keys := make([]string, len(r.Missing))
		for i, f := range r.Missing {
			keys[i] = f.Key
		}
		inst.log.Info("the capsule has unconfigured [env] values; they read as empty until set with 'astrid-host config "+m.ID()+" KEY=VALUE'",
			"missing", strings.Join(keys, ", "))
		h.publishOnboarding(m.ID(), r.Missing)
	}
	return r.Values, nil
}

// publishOnboarding publishes astrid.v1.onboarding.required for capsule id's missing fields, as
// upstream's kernel does: from the nil source, for no principal.
func (h *Host) publishOnboarding(id string, fields []envconfig.Field) {
	payload, err := envconfig.OnboardingPayload(id, fields)
	if err != nil {
		h.log.Error("cannot encode a host event", "topic", TopicOnboardingRequired, "error", err)
		return
	}
	h.bus.Publish(bus.Message{Topic: TopicOnboardingRequired, Payload: payload, SourceID: hostSourceID})
}
