package host

import (
	"encoding/json"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
)

// Topics of the events the host publishes about capsules.
const (
	// TopicCapsulePrefix + a state name (loading, ready, stopped, failed) is published when a
	// capsule instance enters that state.
	TopicCapsulePrefix = "astrid.v1.capsule."
	// TopicCapsuleCrashed is published when an instance fails against its will: its shim died or
	// hung, its run loop ended, or its shim was found compromised.
	TopicCapsuleCrashed = "astrid.v1.capsule.crashed"
	// TopicHealthFailed is published when a capsule's shim fails its health check (it does not
	// answer in time), just before the capsule is treated as crashed.
	TopicHealthFailed = "astrid.v1.health.failed"
	// TopicCapsulesLoaded is published once `run` has loaded every capsule it was given.
	TopicCapsulesLoaded = "astrid.v1.capsules_loaded"
)

// hostSourceID is the source_id of the host's own messages (upstream's nil UUID).
var hostSourceID = uuid.Nil.String()

// capsuleEvent is the data of the astrid.v1.capsule.* events.
type capsuleEvent struct {
	CapsuleID string `json:"capsule_id"`
	Instance  string `json:"instance"`
	State     string `json:"state,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Bus is the host's bus, on which capsules and the host publish.
func (h *Host) Bus() *bus.Bus { return h.bus }

// publishEvent publishes one of the host's own events as a custom payload.
func (h *Host) publishEvent(topic string, data any) {
	payload, err := bus.CustomPayload(data)
	if err != nil {
		h.log.Error("cannot encode a host event", "topic", topic, "error", err)
		return
	}
	h.bus.Publish(bus.Message{Topic: topic, Payload: payload, SourceID: hostSourceID})
}

// Publish publishes a message from the operator (astrid-host run --publish) for the default
// principal. payload is any JSON; it is wrapped as a guest's would be.
func (h *Host) Publish(topic string, payload []byte) error {
	if err := bus.CheckSegments(topic); err != nil {
		return err
	}
	p, err := bus.PayloadFromGuest(payload)
	if err != nil {
		return err
	}
	h.bus.Publish(bus.Message{Topic: topic, Payload: p, SourceID: hostSourceID, Principal: DefaultPrincipal})
	return nil
}

// CapsulesLoaded announces that every capsule given to the host has been loaded.
func (h *Host) CapsulesLoaded() {
	h.bus.Publish(bus.Message{Topic: TopicCapsulesLoaded, Payload: json.RawMessage(`{"type":"raw_json","status":"ready"}`), SourceID: hostSourceID})
}
