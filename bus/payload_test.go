package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/bus/guard"
)

func TestPayloadFromGuestVectors(t *testing.T) {
	cases := []struct {
		name, in, want string // want "" = guard.ErrPayloadNotJSON
	}{
		// The from_json_value vectors of the reference §4.3.
		{"unknown tag", `{"type":"my_plugin_msg","foo":1}`, `{"type":"custom","data":{"type":"my_plugin_msg","foo":1}}`},
		{"no tag", `{"foo":1,"bar":"baz"}`, `{"type":"custom","data":{"foo":1,"bar":"baz"}}`},
		{"string", `"hello"`, `{"type":"custom","data":"hello"}`},
		{"connect", `{"type":"connect"}`, `{"type":"connect"}`},
		{"user_input without text", `{"type":"user_input"}`, `{"type":"custom","data":{"type":"user_input"}}`},
		{"custom unwrapped", `{"type":"custom","data":{"foo":1}}`, `{"type":"custom","data":{"foo":1}}`},
		{"not json", `not json at all`, ""},
		// upstream's from_json_value_known_tag_parses.
		{"user_input", `{"type":"user_input","text":"hi","session_id":"s1"}`, `{"type":"user_input","text":"hi","session_id":"s1"}`},

		// Defaults, optional fields and unknown fields, as serde does them.
		{"session_id default", `{"type":"user_input","text":"hi"}`, `{"type":"user_input","text":"hi","session_id":"default"}`},
		{"context kept", `{"context":{"k":[1, 2]},"type":"user_input","text":"hi"}`, `{"type":"user_input","text":"hi","session_id":"default","context":{"k":[1,2]}}`},
		{"context null is None", `{"type":"user_input","text":"hi","context":null}`, `{"type":"user_input","text":"hi","session_id":"default"}`},
		{"unknown field dropped", `{"type":"connect","x":1}`, `{"type":"connect"}`},
		{"session_id null", `{"type":"user_input","text":"hi","session_id":null}`, `{"type":"custom","data":{"type":"user_input","text":"hi","session_id":null}}`},
		{"text not a string", `{"type":"user_input","text":1}`, `{"type":"custom","data":{"type":"user_input","text":1}}`},
		{"agent_response", `{"type":"agent_response","text":"t","is_final":true}`, `{"type":"agent_response","text":"t","is_final":true,"session_id":"default"}`},
		{"is_final not bool", `{"type":"agent_response","text":"t","is_final":"yes"}`, `{"type":"custom","data":{"type":"agent_response","text":"t","is_final":"yes"}}`},
		{"approval_required", `{"type":"approval_required","request_id":"r","action":"a","resource":"x","reason":"y","risk_level":"high"}`, `{"type":"approval_required","request_id":"r","action":"a","resource":"x","reason":"y","risk_level":"high"}`},
		{"approval_required without risk", `{"type":"approval_required","request_id":"r","action":"a","resource":"x","reason":"y"}`, `{"type":"custom","data":{"type":"approval_required","request_id":"r","action":"a","resource":"x","reason":"y"}}`},
		{"approval_response", `{"type":"approval_response","decision":"approve","request_id":"r"}`, `{"type":"approval_response","request_id":"r","decision":"approve"}`},
		{"disconnect", `{"type":"disconnect"}`, `{"type":"disconnect"}`},
		{"disconnect reason", `{"type":"disconnect","reason":"quit"}`, `{"type":"disconnect","reason":"quit"}`},
		{"disconnect bad reason", `{"type":"disconnect","reason":5}`, `{"type":"custom","data":{"type":"disconnect","reason":5}}`},
		{"custom without data", `{"type":"custom"}`, `{"type":"custom","data":{"type":"custom"}}`},
		{"custom null data", `{"type":"custom","data":null}`, `{"type":"custom","data":null}`},
		{"raw_json", `{"type":"raw_json","k":"v","n":1}`, `{"type":"raw_json","k":"v","n":1}`},
		{"raw_json tag last", `{"k":"v","type":"raw_json"}`, `{"type":"raw_json","k":"v"}`},
		{"tool_cancel_request", `{"type":"tool_cancel_request","call_ids":["a","b"]}`, `{"type":"tool_cancel_request","call_ids":["a","b"]}`},
		{"tool_cancel_request bad", `{"type":"tool_cancel_request","call_ids":["a",1]}`, `{"type":"custom","data":{"type":"tool_cancel_request","call_ids":["a",1]}}`},
		{"tool_execute_request", `{"type":"tool_execute_request","call_id":"c","tool_name":"t","arguments":null}`, `{"type":"tool_execute_request","call_id":"c","tool_name":"t","arguments":null}`},
		{"tool_execute_request no args", `{"type":"tool_execute_request","call_id":"c","tool_name":"t"}`, `{"type":"custom","data":{"type":"tool_execute_request","call_id":"c","tool_name":"t"}}`},
		{"llm_stream_event", `{"type":"llm_stream_event","request_id":"6BA7B810-9DAD-11D1-80B4-00C04FD430C8","event":{"TextDelta":"x"}}`, `{"type":"llm_stream_event","request_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","event":{"TextDelta":"x"}}`},
		{"llm_stream_event bad uuid", `{"type":"llm_stream_event","request_id":"nope","event":{"TextDelta":"x"}}`, `{"type":"custom","data":{"type":"llm_stream_event","request_id":"nope","event":{"TextDelta":"x"}}}`},
		{"llm_request", `{"type":"llm_request","request_id":"6ba7b8109dad11d180b400c04fd430c8","model":"m","messages":[],"tools":[],"system":"s"}`, `{"type":"llm_request","request_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","model":"m","messages":[],"tools":[],"system":"s"}`},
		{"selection_required", `{"type":"selection_required","request_id":"r","title":"t","options":[{"id":"1","label":"one","x":0},{"id":"2","label":"two","description":"d"}],"callback_topic":"a.b"}`,
			`{"type":"selection_required","request_id":"r","title":"t","options":[{"id":"1","label":"one"},{"id":"2","label":"two","description":"d"}],"callback_topic":"a.b"}`},
		{"onboarding_required", `{"type":"onboarding_required","capsule_id":"c","fields":[{"key":"k","prompt":"p","field_type":"Secret"},{"key":"n","prompt":"q","field_type":{"Enum":["a","b"]},"default":"a"}]}`,
			`{"type":"onboarding_required","capsule_id":"c","fields":[{"key":"k","prompt":"p","field_type":"Secret"},{"key":"n","prompt":"q","field_type":{"Enum":["a","b"]},"default":"a"}]}`},
		{"onboarding bad field type", `{"type":"onboarding_required","capsule_id":"c","fields":[{"key":"k","prompt":"p","field_type":"Number"}]}`,
			`{"type":"custom","data":{"type":"onboarding_required","capsule_id":"c","fields":[{"key":"k","prompt":"p","field_type":"Number"}]}}`},
		{"elicit_response", `{"type":"elicit_response","request_id":"00000000-0000-0000-0000-000000000000","value":null,"values":["x"]}`, `{"type":"elicit_response","request_id":"00000000-0000-0000-0000-000000000000","values":["x"]}`},
		{"elicit_request", `{"type":"elicit_request","request_id":"00000000-0000-0000-0000-000000000000","capsule_id":"c","field":{"key":"k","prompt":"p","field_type":{"Text":null}}}`,
			`{"type":"elicit_request","request_id":"00000000-0000-0000-0000-000000000000","capsule_id":"c","field":{"key":"k","prompt":"p","field_type":"Text"}}`},
		{"type not a string", `{"type":1}`, `{"type":"custom","data":{"type":1}}`},
		{"tag is case-sensitive", `{"type":"Connect"}`, `{"type":"custom","data":{"type":"Connect"}}`},
		{"unknown is not a tag", `{"type":"unknown"}`, `{"type":"custom","data":{"type":"unknown"}}`},
		{"last type wins", `{"type":"custom","type":"connect"}`, `{"type":"connect"}`},
		{"escaped key", `{"t\u0079pe":"connect"}`, `{"type":"connect"}`},
		{"compacted", " [1, {\"a\" : 2}] \n", `{"type":"custom","data":[1,{"a":2}]}`},
		{"number", `1.5e3`, `{"type":"custom","data":1.5e3}`},
		{"null", `null`, `{"type":"custom","data":null}`},
		{"html kept", `"<&>"`, `{"type":"custom","data":"<&>"}`},

		// What serde_json refuses is not JSON (guard.CheckPayload; its tests have the cases).
		{"empty", ``, ""},
		{"surrogate pair", `"\ud83d\ude00"`, `{"type":"custom","data":"\ud83d\ude00"}`},
		{"big integer", strings.Repeat("9", 30), `{"type":"custom","data":` + strings.Repeat("9", 30) + `}`},
		{"depth 127", strings.Repeat("[", 127) + strings.Repeat("]", 127), `{"type":"custom","data":` + strings.Repeat("[", 127) + strings.Repeat("]", 127) + `}`},
	}
	for _, c := range cases {
		got, err := PayloadFromGuest([]byte(c.in))
		if c.want == "" {
			if !errors.Is(err, guard.ErrPayloadNotJSON) {
				t.Errorf("%s: PayloadFromGuest(%.60q) = %s, %v; want %v", c.name, c.in, got, err, guard.ErrPayloadNotJSON)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s: PayloadFromGuest(%.60q) =\n  %s, %v\nwant\n  %s", c.name, c.in, got, err, c.want)
			continue
		}
		// Reading our own output again changes nothing (unless wrapping it in
		// a custom payload made it one level too deep to read).
		if guard.CheckPayload(got) != nil {
			continue
		}
		again, err := PayloadFromGuest(got)
		if err != nil || string(again) != string(got) {
			t.Errorf("%s: not idempotent: %s → %s, %v", c.name, got, again, err)
		}
	}
}

func TestGuestBytes(t *testing.T) {
	// upstream's to_guest_bytes tests: custom and raw_json unwrap, the
	// other variants keep their tag.
	cases := []struct{ payload, want string }{
		{`{"type":"custom","data":{"session_id":"abc","messages":[]}}`, `{"session_id":"abc","messages":[]}`},
		{`{"type":"custom","data":"hello"}`, `"hello"`},
		{`{"type":"raw_json","key":"value"}`, `{"key":"value"}`},
		{`{"type":"user_input","text":"hello","session_id":"default"}`, `{"type":"user_input","text":"hello","session_id":"default"}`},
		{`{"type":"connect"}`, `{"type":"connect"}`},
		{`not a payload`, `not a payload`},
	}
	for _, c := range cases {
		if got := GuestBytes(json.RawMessage(c.payload)); string(got) != c.want {
			t.Errorf("GuestBytes(%s) = %s, want %s", c.payload, got, c.want)
		}
	}
}

func TestCustomPayload(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{map[string]any{"lagged_count": 3}, `{"type":"custom","data":{"lagged_count":3}}`},
		{"<a&b>", `{"type":"custom","data":"<a&b>"}`},
		{nil, `{"type":"custom","data":null}`},
	}
	for _, c := range cases {
		got, err := CustomPayload(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("CustomPayload(%v) = %s, %v; want %s", c.v, got, err, c.want)
		}
	}
	if _, err := CustomPayload(func() {}); err == nil {
		t.Error("CustomPayload(func) = nil error")
	}
}

// convertSlow is ConvertPayload without the shortcuts its shape allows: every payload goes
// through the token scan and is compacted.
func convertSlow(raw []byte) json.RawMessage {
	if members, err := objectMembers(raw); err == nil {
		if tag, ok := typeTag(members); ok {
			if variant, known := variants[tag]; known {
				if out, ok := variant(tag, members); ok {
					return out
				}
			}
		}
	}
	return customOf(compact(raw))
}

// TestConvertPayloadShortcut: the payloads ConvertPayload does not scan or compact, by their
// shape, convert exactly as the full scan converts them, a "type" key written with a \u escape
// included.
func TestConvertPayloadShortcut(t *testing.T) {
	for _, raw := range []string{
		`"hello"`, ` "spaced" `, `12`, `[1, {"type":"user_input","text":"x"}]`, `null`,
		`{"a":1}`, `{ "a" : [ 1 , 2 ] }`, `{"a":{"type":"user_input","text":"x"}}`,
		`{"type":"user_input","text":"x"}`, `{"typ\u0065":"user_input","text":"x"}`,
		`{"\u0074ype":"agent_response","text":"t","is_final":true}`, `{"type":"nope"}`,
		`{"type":"custom","data":{"x":"\u00e9"}}`, `"a b"`, `{"a":"x y"}`, `{"type" : "user_input","text":"x"}`,
		` {"type":"nope", "a" :1}`, "[1,\n2]",
	} {
		t.Run(raw, func(t *testing.T) {
			shape, err := guard.CheckPayloadShape([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ConvertPayload([]byte(raw), shape), convertSlow([]byte(raw)); !bytes.Equal(got, want) {
				t.Fatalf("ConvertPayload(%s) = %s; the full scan gives %s", raw, got, want)
			}
		})
	}
}
