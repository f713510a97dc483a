package host

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/shared/pb"
)

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_CHECK_CAPSULE_CAPABILITY] = checkCapsuleCapability
}

// capabilityCheck is the request of astrid_check_capsule_capability: the source id of a capsule
// instance (the source_id of the bus messages it publishes) and the TOML key of a
// [capabilities] field.
type capabilityCheck struct {
	SourceUUID string `json:"source_uuid"`
	Capability string `json:"capability"`
}

// checkCapsuleCapability: astrid_check_capsule_capability(request) -> {"allowed": bool}, whether
// the capsule instance with that source id holds the [capabilities] field (manifest
// Capabilities.Granted: a boolean's value, a list not empty). It fails closed and never fails
// the guest: a malformed request, a source id that is not a UUID or names no instance of this
// host (or a stopped one), and an unknown field all answer false. Upstream 0.5 answers for
// allow_prompt_injection only, and traps on a request that is not JSON.
func checkCapsuleCapability(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	allowed := false
	var req capabilityCheck
	if err := json.Unmarshal(args[0], &req); err == nil {
		if inst := s.inst.host.instanceBySource(req.SourceUUID); inst != nil {
			allowed = inst.manifest.Capabilities.Granted(req.Capability)
		}
	}
	return json.Marshal(struct {
		Allowed bool `json:"allowed"`
	}{allowed})
}

// instanceBySource returns the instance of h whose source id is the UUID id (in any form
// uuid.Parse accepts, as upstream's Uuid::parse_str does), nil for none or a stopped one. A
// restarted capsule's previous source id names nothing: the new instance replaces it.
func (h *Host) instanceBySource(id string) *Instance {
	want, err := uuid.Parse(id)
	if err != nil {
		return nil
	}
	for _, inst := range h.Instances() {
		if have, err := uuid.Parse(inst.ipc.sourceID); err != nil || have != want {
			continue
		}
		if st, _ := inst.State(); st == StateStopped {
			return nil
		}
		return inst
	}
	return nil
}
