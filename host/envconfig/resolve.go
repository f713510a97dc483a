package envconfig

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/manifest"
)

// Reserved are the config keys the host itself owns (upstream: ASTRID_SOCKET_PATH, the kernel's
// socket). An [env] entry with a reserved key is ignored, with a warning, and cannot be set with
// `astrid-host config`. This runtime has no kernel socket, so the key is not set at all.
var Reserved = []string{"ASTRID_SOCKET_PATH"}

// Source says where a resolved value comes from.
type Source int

// The sources of a value, from the strongest.
const (
	// FromOverride: the operator's explicit value for this load (astrid-host call --config).
	FromOverride Source = iota
	// FromSaved: the saved configuration file (astrid-host config, the install prompts).
	FromSaved
	// FromDefault: the [env] entry's default.
	FromDefault
	// Missing: no value; the guest reads "" and the key is in the onboarding event.
	Missing
)

func (s Source) String() string {
	switch s {
	case FromOverride:
		return "override"
	case FromSaved:
		return "saved"
	case FromDefault:
		return "default"
	default:
		return "missing"
	}
}

// Entry is one resolved [env] key.
type Entry struct {
	Key    string
	Def    manifest.EnvDef
	Value  string // "" when Missing
	Source Source
}

// Resolution is what Resolve made of a capsule's [env].
type Resolution struct {
	// Values is the guest's configuration: every [env] key but the reserved ones (a missing key
	// as ""), plus every override.
	Values map[string]string
	// Entries are the [env] keys, reserved ones excluded, in key order.
	Entries []Entry
	// Missing are the onboarding fields of the missing keys, in key order (empty when none).
	Missing []Field
	// Ignored are the keys of saved that are not [env] keys (left over from an older version of
	// the capsule, say), in key order. They do not reach the guest.
	Ignored []string
	// Warnings describe what was ignored: reserved [env] keys, saved values an enum does not allow.
	// None contains a value of a secret.
	Warnings []string
}

// Resolve resolves m's [env] as upstream's resolve_env does, with saved values (Read) and the
// operator's overrides for this load:
//
//   - an override for the key wins;
//   - else its saved value (which an enum must allow: one it does not is ignored with a warning);
//   - else, when enum_values has more than one value, the key is missing (an enum is always the
//     operator's choice);
//   - else its default: a string as it is, any other TOML value as compact JSON;
//   - else it is missing.
//
// Reserved keys are skipped with a warning. Overrides of keys that are not [env] keys are passed
// to the guest too (a bare .wasm has no [env]).
func Resolve(m *manifest.Manifest, saved, overrides map[string]string) Resolution {
	r := Resolution{Values: map[string]string{}}
	keys := make([]string, 0, len(m.Env))
	for k := range m.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		def := m.Env[k]
		if slices.Contains(Reserved, k) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("[env] declares the reserved key %s; it is ignored", k))
			continue
		}
		e := Entry{Key: k, Def: def, Source: Missing}
		if v, ok := overrides[k]; ok {
			e.Value, e.Source = v, FromOverride
		} else if v, ok := saved[k]; ok && CheckValue(k, def, v) == nil {
			e.Value, e.Source = v, FromSaved
		} else {
			if ok {
				r.Warnings = append(r.Warnings, fmt.Sprintf("the saved value of %s is ignored: %v", k, CheckValue(k, def, v)))
			}
			if d, has := DefaultValue(def); has && len(def.EnumValues) <= 1 {
				e.Value, e.Source = d, FromDefault
			}
		}
		if e.Source == Missing {
			r.Missing = append(r.Missing, NewField(k, def))
		}
		r.Values[k] = e.Value
		r.Entries = append(r.Entries, e)
	}
	for k, v := range overrides {
		r.Values[k] = v
	}
	for k := range saved {
		if _, ok := m.Env[k]; !ok {
			r.Ignored = append(r.Ignored, k)
		}
	}
	slices.Sort(r.Ignored)
	return r
}

// DefaultValue is the value an [env] default gives the guest: a string as it is, any other TOML
// value as compact JSON (tables with their keys sorted); has is false when there is no default.
func DefaultValue(def manifest.EnvDef) (value string, has bool) {
	switch v := def.Default.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v), true
		}
		return string(b), true
	}
}

// enumOf is the list of values def allows, nil when any value goes. A secret ignores
// enum_values (as upstream's onboarding does), and so does an array.
func enumOf(def manifest.EnvDef) []string {
	if IsSecret(def) || def.Type == "array" {
		return nil
	}
	return def.EnumValues
}

// CheckValue checks a value for the [env] key key, defined by def: an enum must allow it, an
// array must be a JSON array, and it must be valid UTF-8. The error names the key and what would
// be valid, and never contains a secret's value.
func CheckValue(key string, def manifest.EnvDef, value string) error {
	shown := fmt.Sprintf("%q", value)
	if IsSecret(def) {
		shown = "the value"
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%s: %s is not valid UTF-8", key, shown)
	}
	if allowed := enumOf(def); len(allowed) > 0 && !slices.Contains(allowed, value) {
		return fmt.Errorf("%s: %s is not one of its values: %s", key, shown, strings.Join(quoteAll(allowed), ", "))
	}
	if def.Type == "array" {
		var items []any
		if err := json.Unmarshal([]byte(value), &items); err != nil || items == nil {
			return fmt.Errorf(`%s: %s is not a JSON array; an array value is written as JSON, e.g. '["a","b"]'`, key, shown)
		}
	}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
