package envconfig

import (
	"encoding/json"
	"fmt"

	"github.com/astrid-go/astrid/host/manifest"
)

// TopicOnboardingRequired is the topic of the event the host publishes when a capsule loads
// with missing [env] values (upstream's astrid.v1.onboarding.required).
const TopicOnboardingRequired = "astrid.v1.onboarding.required"

// Field describes one missing [env] value: upstream's OnboardingField, with its JSON names.
type Field struct {
	Key string `json:"key"`
	// Prompt is the [env] entry's request, else "Please enter value for KEY".
	Prompt      string    `json:"prompt"`
	Description string    `json:"description,omitempty"`
	FieldType   FieldType `json:"field_type"`
	// Default is the [env] default as text (nil when there is none); a one-value enum with no
	// default proposes its value.
	Default     *string `json:"default,omitempty"`
	Placeholder string  `json:"placeholder,omitempty"`
}

// FieldType is the kind of input a field wants, encoded as upstream's OnboardingFieldType:
// "Text", "Secret", "Array", or {"Enum": [values...]}.
type FieldType struct {
	// Kind is "Text", "Secret", "Enum" or "Array".
	Kind string
	// Options are an Enum's values.
	Options []string
}

// MarshalJSON encodes the type as serde encodes upstream's enum: a unit variant as its name, the
// Enum variant as {"Enum": [...]}.
func (t FieldType) MarshalJSON() ([]byte, error) {
	if t.Kind == "Enum" {
		opts := t.Options
		if opts == nil {
			opts = []string{}
		}
		return json.Marshal(map[string][]string{"Enum": opts})
	}
	return json.Marshal(t.Kind)
}

// UnmarshalJSON decodes what MarshalJSON writes.
func (t *FieldType) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		switch name {
		case "Text", "Secret", "Array":
			*t = FieldType{Kind: name}
			return nil
		}
		return fmt.Errorf("unknown field_type %q", name)
	}
	var e struct {
		Enum *[]string `json:"Enum"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Enum == nil {
		return fmt.Errorf("field_type %s is neither \"Text\", \"Secret\", \"Array\" nor {\"Enum\": [...]}", b)
	}
	*t = FieldType{Kind: "Enum", Options: *e.Enum}
	return nil
}

// NewField builds the onboarding field of the [env] key key, as upstream's
// build_onboarding_field: a secret is Secret (its enum_values ignored), type "array" is Array,
// more than one enum value is Enum, anything else is Text.
func NewField(key string, def manifest.EnvDef) Field {
	f := Field{Key: key, Prompt: def.Request, Description: def.Description, Placeholder: def.Placeholder}
	if f.Prompt == "" {
		f.Prompt = "Please enter value for " + key
	}
	switch {
	case IsSecret(def):
		f.FieldType = FieldType{Kind: "Secret"}
	case def.Type == "array":
		f.FieldType = FieldType{Kind: "Array"}
	case len(def.EnumValues) > 1:
		f.FieldType = FieldType{Kind: "Enum", Options: def.EnumValues}
	default:
		f.FieldType = FieldType{Kind: "Text"}
	}
	if d, ok := DefaultValue(def); ok {
		f.Default = &d
	} else if len(def.EnumValues) == 1 {
		d := def.EnumValues[0]
		f.Default = &d
	}
	return f
}

// OnboardingRequired is the payload of astrid.v1.onboarding.required: upstream's
// IpcPayload::OnboardingRequired, tagged "type": "onboarding_required".
type OnboardingRequired struct {
	Type      string  `json:"type"`
	CapsuleID string  `json:"capsule_id"`
	Fields    []Field `json:"fields"`
}

// OnboardingPayload encodes the onboarding event of capsule capsuleID for fields.
func OnboardingPayload(capsuleID string, fields []Field) (json.RawMessage, error) {
	if fields == nil {
		fields = []Field{}
	}
	return json.Marshal(OnboardingRequired{Type: "onboarding_required", CapsuleID: capsuleID, Fields: fields})
}
