package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// capsuleWithCapability is a minimal Capsule.toml whose [capabilities] has one entry.
func capsuleWithCapability(entry string) string {
	return `[package]
name = "caps"
version = "0.1.0"

[[component]]
id = "caps"
file = "caps.wasm"

[capabilities]
` + entry + "\n"
}

// TestCapabilityFieldsCoverStruct: the table of TOML keys names every field of Capabilities
// once, so a new field cannot be left out of the decoder or of Granted: setting any one field
// grants exactly one name.
func TestCapabilityFieldsCoverStruct(t *testing.T) {
	names := CapabilityNames()
	ty := reflect.TypeOf(Capabilities{})
	if len(names) != ty.NumField() {
		t.Fatalf("%d capability names for %d fields of Capabilities: %v", len(names), ty.NumField(), names)
	}
	for i := range ty.NumField() {
		field := ty.Field(i)
		t.Run(field.Name, func(t *testing.T) {
			var c Capabilities
			v := reflect.ValueOf(&c).Elem().Field(i)
			switch field.Type.Kind() {
			case reflect.Bool:
				v.SetBool(true)
			case reflect.Slice:
				v.Set(reflect.ValueOf([]string{"x"}))
			default:
				t.Fatalf("field %s has type %s: Granted knows booleans and lists", field.Name, field.Type)
			}
			var granted []string
			for _, n := range names {
				if c.Granted(n) {
					granted = append(granted, n)
				}
			}
			if len(granted) != 1 {
				t.Fatalf("setting %s grants %v; want exactly one name", field.Name, granted)
			}
		})
	}
}

// TestCapabilityGranted: each [capabilities] key, decoded from TOML, is granted by name (a
// boolean when true, a list when not empty); a false boolean, an empty list, an unknown name
// and a name in another case are not.
func TestCapabilityGranted(t *testing.T) {
	values := map[string]string{
		"uplink":                 "true",
		"net":                    `["example.com"]`,
		"kv":                     `["*"]`,
		"fs_read":                `["cwd://"]`,
		"fs_write":               `["cwd://out"]`,
		"host_process":           `["echo"]`,
		"net_bind":               `["unix"]`,
		"ipc_publish":            `["a.v1.b"]`,
		"ipc_subscribe":          `["a.v1.*"]`,
		"identity":               `["resolve"]`,
		"allow_prompt_injection": "true",
		"process_network":        "true",
	}
	for _, name := range CapabilityNames() {
		t.Run(name, func(t *testing.T) {
			value, ok := values[name]
			if !ok {
				t.Fatalf("no test value for [capabilities] %s", name)
			}
			m, _ := mustParse(t, capsuleWithCapability(fmt.Sprintf("%s = %s", name, value)))
			for _, other := range CapabilityNames() {
				if got := m.Capabilities.Granted(other); got != (other == name) {
					t.Errorf("with only %s set, Granted(%q) = %v", name, other, got)
				}
			}
			off := "false"
			if value != "true" {
				off = "[]"
			}
			m, _ = mustParse(t, capsuleWithCapability(fmt.Sprintf("%s = %s", name, off)))
			if m.Capabilities.Granted(name) {
				t.Errorf("%s = %s is granted", name, off)
			}
		})
	}
	var all Capabilities
	for _, f := range all.fields() {
		if f.flag != nil {
			*f.flag = true
		} else {
			*f.list = []string{"x"}
		}
	}
	for _, name := range []string{"", "unknown", "Uplink", "ALLOW_PROMPT_INJECTION", "net ", "AllowPromptInjection"} {
		if all.Granted(name) {
			t.Errorf("Granted(%q) = true; want false for a name that is not a [capabilities] key", name)
		}
	}
	if !slices.Contains(CapabilityNames(), "allow_prompt_injection") {
		t.Error("allow_prompt_injection, the capability upstream checks, is not a name")
	}
}
