package astrid

import (
	"encoding/json"
	"fmt"
)

// Limits of the hook and capability requests (the host's; the functions here return an error
// instead of sending a longer one).
const (
	// MaxHookRequestBytes bounds TriggerHook's request, {"hook","payload"} as JSON: 1 MiB.
	MaxHookRequestBytes = 1 << 20
	// MaxCapabilityRequestBytes bounds CheckCapsuleCapability's request as JSON: 1 KiB.
	MaxCapabilityRequestBytes = 1 << 10
)

// TriggerHook runs the interceptors of every other ready capsule whose [[interceptor]] event
// matches hook, at the same time, with payload (encoded with encoding/json) as their event's
// payload, and returns what they answered (astrid_trigger_hook): the JSON of each Continue or
// Final verdict whose bytes are JSON, in the order they finished. Interceptors that deny, fail,
// answer nothing or answer something other than JSON are left out. They run with no caller
// context.
func TriggerHook(hook string, payload any) ([]json.RawMessage, error) {
	req, err := encodeHookRequest(hook, payload)
	if err != nil {
		return nil, err
	}
	return decodeHookResults(callHost(hostTriggerHook, req))
}

// encodeHookRequest encodes astrid_trigger_hook's request, checking its size.
func encodeHookRequest(hook string, payload any) ([]byte, error) {
	if hook == "" {
		return nil, fmt.Errorf("astrid: TriggerHook: empty hook topic")
	}
	req, err := json.Marshal(struct {
		Hook    string `json:"hook"`
		Payload any    `json:"payload"`
	}{hook, payload})
	if err != nil {
		return nil, fmt.Errorf("astrid: TriggerHook %s: encoding the payload: %w", hook, err)
	}
	if err := checkLen("TriggerHook", "request", len(req), MaxHookRequestBytes); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeHookResults decodes astrid_trigger_hook's result, a JSON array; never nil.
func decodeHookResults(b []byte) ([]json.RawMessage, error) {
	var rs []json.RawMessage
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("astrid: astrid_trigger_hook: decoding the host's result %.200q: %w", b, err)
	}
	if rs == nil {
		rs = []json.RawMessage{}
	}
	return rs, nil
}

// CheckCapsuleCapability reports whether the capsule instance that published with source id
// sourceUUID (a Message's SourceID, or CallerContext.SourceID) has capability in its
// manifest's [capabilities] (astrid_check_capsule_capability): a boolean field's value, or a
// list field that is not empty. An unknown capsule or field is false. A capsule that acts on
// what others publish uses it to honour their grants, as upstream's prompt builder checks
// allow_prompt_injection.
func CheckCapsuleCapability(sourceUUID, capability string) (bool, error) {
	req, err := encodeCapabilityRequest(sourceUUID, capability)
	if err != nil {
		return false, err
	}
	return decodeCapabilityResult(callHost(hostCheckCapsuleCapability, req))
}

// encodeCapabilityRequest encodes astrid_check_capsule_capability's request, checking its size.
func encodeCapabilityRequest(sourceUUID, capability string) ([]byte, error) {
	req, err := json.Marshal(struct {
		SourceUUID string `json:"source_uuid"`
		Capability string `json:"capability"`
	}{sourceUUID, capability})
	if err != nil {
		return nil, fmt.Errorf("astrid: CheckCapsuleCapability: encoding the request: %w", err)
	}
	if err := checkLen("CheckCapsuleCapability", "request", len(req), MaxCapabilityRequestBytes); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeCapabilityResult decodes {"allowed": bool}; a missing or non-boolean field is false,
// as upstream's SDK reads it.
func decodeCapabilityResult(b []byte) (bool, error) {
	var r struct {
		Allowed json.RawMessage `json:"allowed"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, fmt.Errorf("astrid: astrid_check_capsule_capability: decoding the host's result %.200q: %w", b, err)
	}
	return string(r.Allowed) == "true", nil
}
