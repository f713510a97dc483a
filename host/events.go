package host

import (
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/topics"
	"github.com/astrid-go/astrid/shared/pb"
)

// Topics of the events the host publishes about capsules.
const (
	// TopicCapsulePrefix + a state name (loading, ready, stopped, failed) is published when a
	// capsule instance enters that state.
	TopicCapsulePrefix = "astrid.v1.capsule."
	// TopicCapsuleCrashed is published when an instance fails against its will: its shim died or
	// hung, its run loop ended, or its shim was found compromised.
	TopicCapsuleCrashed = "astrid.v1.capsule.crashed"
	// TopicCapsuleTrapped is published when a guest call traps (unreachable, a Go panic, its
	// time or memory limit, a stack overflow, ...). The call fails and the shim replaces the
	// trapped Store, so the capsule stays Ready: a trap is not a crash, unless it ends a run loop.
	TopicCapsuleTrapped = "astrid.v1.capsule.trapped"
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
	// For astrid.v1.capsule.crashed: the trap that ended a run loop (its kind, e.g. "timeout",
	// "out_of_memory", "unreachable", and the guest's backtrace), and the last lines the shim
	// wrote to stderr outside its log (a Go runtime crash report, a Rust panic).
	TrapKind   string   `json:"trap_kind,omitempty"`
	Backtrace  string   `json:"backtrace,omitempty"`
	StderrTail []string `json:"stderr_tail,omitempty"`
}

// trapEvent is the data of astrid.v1.capsule.trapped.
type trapEvent struct {
	CapsuleID string `json:"capsule_id"`
	Instance  string `json:"instance"`
	Export    string `json:"export"`
	TrapKind  string `json:"trap_kind"`
	Message   string `json:"message"`
	Backtrace string `json:"backtrace,omitempty"`
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
	if err := topics.CheckSegments(topic); err != nil {
		return err
	}
	p, err := bus.PayloadFromGuest(payload)
	if err != nil {
		return err
	}
	// The operator's message is shared with other hosts, as a guest's is.
	_, err = h.bus.PublishShared([]bus.Message{{Topic: topic, Payload: p, SourceID: hostSourceID, Principal: DefaultPrincipal}})
	return err
}

// CapsulesLoaded announces that every capsule given to the host has been loaded.
func (h *Host) CapsulesLoaded() {
	h.bus.Publish(bus.Message{Topic: TopicCapsulesLoaded, Payload: json.RawMessage(`{"type":"raw_json","status":"ready"}`), SourceID: hostSourceID})
}

// trapKindName is the lower-case name of a guest failure's kind as events and logs show it
// ("unreachable", "timeout", "out_of_memory", ...).
func trapKindName(k pb.GuestError_Kind) string {
	return strings.ToLower(k.String())
}
