package host

import (
	"context"
	"encoding/json"
	"fmt"
)

// ControlReload reloads a capsule (Host.Reload): params ReloadParams, result ReloadReply. The
// reload runs to its end even if the client goes away.
const ControlReload = "reload"

// ReloadParams are the params of ControlReload.
type ReloadParams struct {
	// Name is the capsule's package.name.
	Name string `json:"name"`
}

// ReloadReply is the result of ControlReload.
type ReloadReply struct {
	Capsule string `json:"capsule"`
	// Instance and Previous are the source ids of the new instance and of the one it replaced.
	Instance string `json:"instance"`
	Previous string `json:"previous_instance"`
	// Reloads counts the capsule's reloads, this one included.
	Reloads int `json:"reloads"`
	// Compiled is true when the module was compiled (false: the cached artefact was used).
	Compiled bool  `json:"compiled"`
	TookMs   int64 `json:"took_ms"`
}

// controlReload serves ControlReload.
func (h *Host) controlReload(ctx context.Context, raw json.RawMessage) (any, error) {
	var p ReloadParams
	if err := json.Unmarshal(raw, &p); err != nil || p.Name == "" {
		return nil, fmt.Errorf(`%s: want params {"name": "<capsule name>"}`, ControlReload)
	}
	previous := ""
	if old := h.current(p.Name); old != nil {
		previous = old.ipc.sourceID
	}
	inst, res, err := h.Reload(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	st := inst.Status()
	return ReloadReply{Capsule: st.Capsule, Instance: st.Instance, Previous: previous, Reloads: st.Reloads,
		Compiled: res.Compiled, TookMs: res.Took.Milliseconds()}, nil
}
