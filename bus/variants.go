package bus

import (
	"encoding/json"

	"github.com/google/uuid"
)

// This file describes upstream 0.5's IpcPayload variants
// (astrid-types/src/ipc.rs) closely enough to reproduce what serde does
// when PayloadFromGuest reads a payload with a known "type": which fields a
// variant needs, of which JSON kind, with which defaults, and how the
// variant serialises again ("type" first, then the fields in declaration
// order, absent options left out).

// variants maps each known tag to its reader. A reader returns the
// normalised tagged JSON, or false when serde's typed deserialisation would
// fail (and the payload falls back to custom).
var variants = map[string]func(tag string, ms []member) (json.RawMessage, bool){
	"raw_json": readRawJSON,
	"user_input": structVariant(
		field{name: "text", conv: str},
		field{name: "session_id", conv: str, dflt: `"default"`},
		field{name: "context", conv: optional(anyValue), optional: true},
	),
	"agent_response": structVariant(
		field{name: "text", conv: str},
		field{name: "is_final", conv: boolean},
		field{name: "session_id", conv: str, dflt: `"default"`},
	),
	"approval_required": structVariant(
		field{name: "request_id", conv: str},
		field{name: "action", conv: str},
		field{name: "resource", conv: str},
		field{name: "reason", conv: str},
		field{name: "risk_level", conv: str},
	),
	"approval_response": structVariant(
		field{name: "request_id", conv: str},
		field{name: "decision", conv: str},
		field{name: "reason", conv: optional(str), optional: true},
	),
	"onboarding_required": structVariant(
		field{name: "capsule_id", conv: str},
		field{name: "fields", conv: arrayOf(onboardingField)},
	),
	"llm_request": structVariant(
		field{name: "request_id", conv: uuidValue},
		field{name: "model", conv: str},
		field{name: "messages", conv: kind(isArray)},
		field{name: "tools", conv: kind(isArray)},
		field{name: "system", conv: str},
	),
	"llm_stream_event": structVariant(
		field{name: "request_id", conv: uuidValue},
		field{name: "event", conv: kind(notNull)},
	),
	"llm_response": structVariant(
		field{name: "request_id", conv: uuidValue},
		field{name: "response", conv: kind(isObject)},
	),
	"tool_execute_request": structVariant(
		field{name: "call_id", conv: str},
		field{name: "tool_name", conv: str},
		field{name: "arguments", conv: anyValue},
	),
	"tool_execute_result": structVariant(
		field{name: "call_id", conv: str},
		field{name: "result", conv: kind(isObject)},
	),
	"tool_cancel_request": structVariant(
		field{name: "call_ids", conv: arrayOf(str)},
	),
	"selection_required": structVariant(
		field{name: "request_id", conv: str},
		field{name: "title", conv: str},
		field{name: "options", conv: arrayOf(selectionOption)},
		field{name: "callback_topic", conv: str},
	),
	"elicit_request": structVariant(
		field{name: "request_id", conv: uuidValue},
		field{name: "capsule_id", conv: str},
		field{name: "field", conv: onboardingField},
	),
	"elicit_response": structVariant(
		field{name: "request_id", conv: uuidValue},
		field{name: "value", conv: optional(str), optional: true},
		field{name: "values", conv: optional(arrayOf(str)), optional: true},
	),
	"connect": structVariant(), // a unit variant: any other member is ignored
	"disconnect": structVariant(
		field{name: "reason", conv: optional(str), optional: true},
	),
	"custom": structVariant(
		field{name: "data", conv: anyValue},
	),
}

// conv checks one present field value and returns its serialisation; a nil
// result with true means "None", which is left out.
type conv func(v json.RawMessage) ([]byte, bool)

// field is one field of a struct: its JSON name, its conversion, and what a
// missing field means — dflt (the serialised default), or left out when
// optional (an Option), or failure.
type field struct {
	name     string
	conv     conv
	dflt     string
	optional bool
}

// OnboardingField and SelectionOption, the nested structs of the variants.
var (
	onboardingField = structOf(
		field{name: "key", conv: str},
		field{name: "prompt", conv: str},
		field{name: "description", conv: optional(str), optional: true},
		field{name: "field_type", conv: onboardingFieldType},
		field{name: "default", conv: optional(str), optional: true},
		field{name: "placeholder", conv: optional(str), optional: true},
	)
	selectionOption = structOf(
		field{name: "id", conv: str},
		field{name: "label", conv: str},
		field{name: "description", conv: optional(str), optional: true},
	)
)

// structVariant returns the reader of a struct (or unit) variant.
func structVariant(fields ...field) func(string, []member) (json.RawMessage, bool) {
	return func(tag string, ms []member) (json.RawMessage, bool) {
		b := append([]byte(`{"type":`), appendString(nil, tag)...)
		b, ok := appendFields(b, ms, fields, true)
		if !ok {
			return nil, false
		}
		return append(b, '}'), true
	}
}

// structOf returns the conversion of a nested struct.
func structOf(fields ...field) conv {
	return func(v json.RawMessage) ([]byte, bool) {
		ms, err := objectMembers(v)
		if err != nil {
			return nil, false
		}
		b, ok := appendFields([]byte{'{'}, ms, fields, false)
		if !ok {
			return nil, false
		}
		return append(b, '}'), true
	}
}

// appendFields appends the serialised fields to b, each preceded by a comma
// when comma is set or it is not the first.
func appendFields(b []byte, ms []member, fields []field, comma bool) ([]byte, bool) {
	for _, f := range fields {
		var out []byte
		if v, present := lastMember(ms, f.name); present {
			var ok bool
			if out, ok = f.conv(v); !ok {
				return nil, false
			}
		} else if f.dflt != "" {
			out = []byte(f.dflt)
		} else if !f.optional {
			return nil, false // serde: missing field
		}
		if out == nil {
			continue
		}
		if comma {
			b = append(b, ',')
		}
		comma = true
		b = appendString(b, f.name)
		b = append(b, ':')
		b = append(b, out...)
	}
	return b, true
}

// readRawJSON reads the newtype variant RawJson(Value): serde gives it the
// object without its tag, and serialises it back with the tag first.
func readRawJSON(tag string, ms []member) (json.RawMessage, bool) {
	rest := withoutType(ms)
	b := append([]byte(`{"type":`), appendString(nil, tag)...)
	for _, m := range rest {
		b = append(b, ',')
		b = appendString(b, m.key)
		b = append(b, ':')
		b = append(b, compact(m.value)...)
	}
	return append(b, '}'), true
}

// str accepts a JSON string (a Rust String).
func str(v json.RawMessage) ([]byte, bool) {
	if !isString(v) {
		return nil, false
	}
	return compact(v), true
}

// boolean accepts true or false.
func boolean(v json.RawMessage) ([]byte, bool) {
	switch c := compact(v); string(c) {
	case "true", "false":
		return c, true
	}
	return nil, false
}

// anyValue accepts any JSON value, null included (a serde_json Value).
func anyValue(v json.RawMessage) ([]byte, bool) { return compact(v), true }

// notNull is a kind test for values that cannot be null.
func notNull(v []byte) bool { return !isNull(v) }

// kind accepts any value that passes test, unchanged but compacted.
func kind(test func([]byte) bool) conv {
	return func(v json.RawMessage) ([]byte, bool) {
		if !test(v) {
			return nil, false
		}
		return compact(v), true
	}
}

// uuidValue accepts a string that the uuid crate parses (hyphenated, simple,
// braced or URN) and serialises it hyphenated in lower case.
func uuidValue(v json.RawMessage) ([]byte, bool) {
	var s string
	if !isString(v) || json.Unmarshal(v, &s) != nil {
		return nil, false
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return nil, false
	}
	return appendString(nil, id.String()), true
}

// optional wraps c for an Option: null is None (left out).
func optional(c conv) conv {
	return func(v json.RawMessage) ([]byte, bool) {
		if isNull(v) {
			return nil, true
		}
		return c(v)
	}
}

// arrayOf returns the conversion of a Vec whose elements convert with elem.
func arrayOf(elem conv) conv {
	return func(v json.RawMessage) ([]byte, bool) {
		if !isArray(v) {
			return nil, false
		}
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return nil, false
		}
		b := []byte{'['}
		for i, item := range items {
			out, ok := elem(item)
			if !ok || out == nil {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, out...)
		}
		return append(b, ']'), true
	}
}

// onboardingFieldType accepts the externally tagged enum
// OnboardingFieldType: "Text", "Secret", "Array" (also {"Text":null} and
// the like, which serde accepts for unit variants) or {"Enum":[strings]}.
func onboardingFieldType(v json.RawMessage) ([]byte, bool) {
	if isString(v) {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, false
		}
		switch s {
		case "Text", "Secret", "Array":
			return appendString(nil, s), true
		}
		return nil, false
	}
	ms, err := objectMembers(v)
	if err != nil || len(ms) != 1 {
		return nil, false
	}
	switch ms[0].key {
	case "Text", "Secret", "Array":
		if !isNull(ms[0].value) {
			return nil, false
		}
		return appendString(nil, ms[0].key), true
	case "Enum":
		choices, ok := arrayOf(str)(ms[0].value)
		if !ok {
			return nil, false
		}
		return append(append([]byte(`{"Enum":`), choices...), '}'), true
	}
	return nil, false
}
