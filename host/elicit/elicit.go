// Package elicit holds the wire forms of astrid_elicit, upstream's (astrid-capsule 0.5,
// host/elicit.rs; astrid-types ipc.rs): the guest's request, the ElicitRequest the host publishes
// on astrid.v1.elicit, the ElicitResponse a frontend publishes on
// astrid.v1.elicit.response.<request_id>, and the result the guest gets. The host (the host
// function) and `astrid-host install` (the frontend that answers) both use it, so the two agree
// on every shape and check.
package elicit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Timeout is how long astrid_elicit waits for its answer: 120 s (MAX_ELICIT_TIMEOUT_MS).
const Timeout = 120 * time.Second

// TopicRequest is the topic of the ElicitRequest events.
const TopicRequest = "astrid.v1.elicit"

// ResponseTopic is the topic the answer to request id is published on.
func ResponseTopic(id uuid.UUID) string { return TopicRequest + ".response." + id.String() }

// MaxResponseBytes bounds the answer astrid_elicit reads: 1 MiB.
const MaxResponseBytes = 1 << 20

// The request kinds ("type").
const (
	KindText   = "text"
	KindSecret = "secret"
	KindSelect = "select"
	KindArray  = "array"
)

// Upstream's trap texts.
var (
	ErrNotInLifecycle = errors.New("elicit is only available during #[install] or #[upgrade] lifecycle hooks")
	ErrNoAnswer       = errors.New("elicit request timed out, was cancelled, or response channel closed")
	ErrCancelled      = errors.New("user cancelled elicit request")
	ErrEmptySecret    = errors.New("received empty secret value from elicit response")
)

// Request is the guest's request: {"type", "key", "description"?, "options"?, "default"?}.
type Request struct {
	Kind        string   `json:"type"`
	Key         string   `json:"key"`
	Description *string  `json:"description,omitempty"`
	Options     []string `json:"options,omitempty"`
	Default     *string  `json:"default,omitempty"`
}

// Field is upstream's OnboardingField as an elicit request carries it. FieldType is "Text",
// "Secret", "Array" or {"Enum": [options]} (serde's external tagging).
type Field struct {
	Key         string          `json:"key"`
	Prompt      string          `json:"prompt"`
	Description *string         `json:"description,omitempty"`
	FieldType   json.RawMessage `json:"field_type"`
	Default     *string         `json:"default,omitempty"`
	Placeholder *string         `json:"placeholder,omitempty"`
}

// Options are the choices of a select field (an Enum), nil for any other.
func (f Field) Options() []string {
	var e struct {
		Enum []string `json:"Enum"`
	}
	if json.Unmarshal(f.FieldType, &e) == nil {
		return e.Enum
	}
	return nil
}

// Kind is the request kind of f's field_type ("" for one this package does not know).
func (f Field) Kind() string {
	var s string
	if json.Unmarshal(f.FieldType, &s) == nil {
		switch s {
		case "Text":
			return KindText
		case "Secret":
			return KindSecret
		case "Array":
			return KindArray
		}
		return ""
	}
	if f.Options() != nil {
		return KindSelect
	}
	return ""
}

// ParseRequest decodes and checks the guest's request and maps it to its field, with upstream's
// texts: "invalid elicit request JSON: ...", "select elicit request requires non-empty options",
// "unknown elicit type: T".
func ParseRequest(data []byte) (Request, Field, error) {
	var aux struct {
		Kind        *string  `json:"type"`
		Key         *string  `json:"key"`
		Description *string  `json:"description"`
		Options     []string `json:"options"`
		Default     *string  `json:"default"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return Request{}, Field{}, fmt.Errorf("invalid elicit request JSON: %v", err)
	}
	switch {
	case aux.Kind == nil:
		return Request{}, Field{}, errors.New("invalid elicit request JSON: missing field `type`")
	case aux.Key == nil:
		return Request{}, Field{}, errors.New("invalid elicit request JSON: missing field `key`")
	}
	r := Request{Kind: *aux.Kind, Key: *aux.Key, Description: aux.Description, Options: aux.Options, Default: aux.Default}
	var ft any
	switch r.Kind {
	case KindText:
		ft = "Text"
	case KindSecret:
		ft = "Secret"
	case KindSelect:
		if len(r.Options) == 0 {
			return Request{}, Field{}, errors.New("select elicit request requires non-empty options")
		}
		ft = map[string][]string{"Enum": r.Options}
	case KindArray:
		ft = "Array"
	default:
		return Request{}, Field{}, fmt.Errorf("unknown elicit type: %s", r.Kind)
	}
	ftJSON, err := json.Marshal(ft)
	if err != nil {
		return Request{}, Field{}, err
	}
	prompt := r.Key
	if r.Description != nil {
		prompt = *r.Description
	}
	return r, Field{Key: r.Key, Prompt: prompt, Description: r.Description, FieldType: ftJSON, Default: r.Default}, nil
}

// Event is the ElicitRequest payload: {"type":"elicit_request","request_id","capsule_id","field"}.
type Event struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	CapsuleID string `json:"capsule_id"`
	Field     Field  `json:"field"`
}

// RequestPayload is the payload the host publishes on TopicRequest.
func RequestPayload(id uuid.UUID, capsuleID string, f Field) (json.RawMessage, error) {
	return json.Marshal(Event{Type: "elicit_request", RequestID: id.String(), CapsuleID: capsuleID, Field: f})
}

// ParseEvent decodes an ElicitRequest payload; its request id must be a UUID.
func ParseEvent(payload []byte) (Event, uuid.UUID, error) {
	var e Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return Event{}, uuid.UUID{}, fmt.Errorf("elicit request: %w", err)
	}
	if e.Type != "elicit_request" {
		return Event{}, uuid.UUID{}, fmt.Errorf("elicit request: payload type %q, want \"elicit_request\"", e.Type)
	}
	id, err := uuid.Parse(e.RequestID)
	if err != nil {
		return Event{}, uuid.UUID{}, fmt.Errorf("elicit request: request_id: %w", err)
	}
	return e, id, nil
}

// Answer is the ElicitResponse payload: {"type":"elicit_response","request_id","value"?,"values"?};
// neither value nor values is a cancel.
type Answer struct {
	Type      string   `json:"type"`
	RequestID string   `json:"request_id"`
	Value     *string  `json:"value,omitempty"`
	Values    []string `json:"values,omitempty"`
}

// ResponsePayload is the payload answering request id: value, or values for an array, or a
// cancel when both are nil.
func ResponsePayload(id uuid.UUID, value *string, values []string) (json.RawMessage, error) {
	return json.Marshal(Answer{Type: "elicit_response", RequestID: id.String(), Value: value, Values: values})
}

// ParseResponse decodes the answer astrid_elicit got, with upstream's texts for a payload of
// another type and for a cancel.
func ParseResponse(payload []byte) (Answer, error) {
	var a Answer
	var raw struct {
		Values json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(payload, &a); err != nil || a.Type != "elicit_response" {
		return Answer{}, errors.New("unexpected IPC payload type in elicit response")
	}
	_ = json.Unmarshal(payload, &raw)
	if a.Value == nil && (len(raw.Values) == 0 || string(raw.Values) == "null") {
		return Answer{}, ErrCancelled
	}
	if a.Values == nil && len(raw.Values) > 0 && string(raw.Values) != "null" {
		a.Values = []string{}
	}
	return a, nil
}

// Result is the guest's result for an answer of kind: {"ok": true} for a secret (stored by the
// caller), {"values": [..]} for an array, {"value": ".."} otherwise.
func Result(kind string, a Answer) ([]byte, error) {
	switch kind {
	case KindSecret:
		return []byte(`{"ok":true}`), nil
	case KindArray:
		vals := a.Values
		if vals == nil {
			vals = []string{}
		}
		return json.Marshal(map[string][]string{"values": vals})
	}
	v := ""
	if a.Value != nil {
		v = *a.Value
	}
	return json.Marshal(map[string]string{"value": v})
}

// CheckValue checks an answer for field f given as one string (--set KEY=VALUE): a select's
// value must be one of its options, a secret must not be empty. An array's value is a JSON array
// of strings. It returns the answer's value and values; errors name the key and never contain a
// secret's value.
func CheckValue(f Field, value string) (*string, []string, error) {
	switch f.Kind() {
	case KindSelect:
		if opts := f.Options(); !slices.Contains(opts, value) {
			return nil, nil, fmt.Errorf("%s: %q is not one of its options: %q", f.Key, value, opts)
		}
	case KindSecret:
		if value == "" {
			return nil, nil, fmt.Errorf("%s: a secret must not be empty", f.Key)
		}
	case KindArray:
		var items []string
		if err := json.Unmarshal([]byte(value), &items); err != nil || items == nil {
			return nil, nil, fmt.Errorf(`%s: %q is not a JSON array of strings; an array value is written as JSON, e.g. '["a","b"]'`, f.Key, value)
		}
		return nil, items, nil
	case "":
		return nil, nil, fmt.Errorf("%s: unknown field type %s", f.Key, f.FieldType)
	}
	return &value, nil, nil
}
