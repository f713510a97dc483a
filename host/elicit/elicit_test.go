package elicit

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestParseRequest: upstream's mapping to an OnboardingField and its refusal texts.
func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name, req, field, err string
	}{
		{"text", `{"type":"text","key":"api_url","description":"Enter API URL","default":"https://example.com"}`,
			`{"key":"api_url","prompt":"Enter API URL","description":"Enter API URL","field_type":"Text","default":"https://example.com"}`, ""},
		{"secret, key as prompt", `{"type":"secret","key":"api_key"}`, `{"key":"api_key","prompt":"api_key","field_type":"Secret"}`, ""},
		{"select", `{"type":"select","key":"network","options":["mainnet","testnet"]}`,
			`{"key":"network","prompt":"network","field_type":{"Enum":["mainnet","testnet"]}}`, ""},
		{"array", `{"type":"array","key":"relays"}`, `{"key":"relays","prompt":"relays","field_type":"Array"}`, ""},
		{"select, empty options", `{"type":"select","key":"n","options":[]}`, "", "select elicit request requires non-empty options"},
		{"select, no options", `{"type":"select","key":"n"}`, "", "select elicit request requires non-empty options"},
		{"unknown type", `{"type":"checkbox","key":"foo"}`, "", "unknown elicit type: checkbox"},
		{"no key", `{"type":"text"}`, "", "invalid elicit request JSON: missing field `key`"},
		{"not JSON", `{`, "", "invalid elicit request JSON: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, f, err := ParseRequest([]byte(tc.req))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			payload, err := RequestPayload(uuid.Nil, "c", f)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"type":"elicit_request","request_id":"00000000-0000-0000-0000-000000000000","capsule_id":"c","field":` + tc.field + `}`
			if string(payload) != want {
				t.Fatalf("payload\n got %s\nwant %s", payload, want)
			}
			e, _, err := ParseEvent(payload)
			if err != nil || e.Field.Key != f.Key || e.Field.Kind() != f.Kind() {
				t.Fatalf("ParseEvent: %+v %v", e, err)
			}
		})
	}
}

// TestResponse: the answer's shapes, a cancel, another payload, and the guest's results.
func TestResponse(t *testing.T) {
	v := "hello"
	for _, tc := range []struct {
		name, kind, payload, result, err string
	}{
		{"text", KindText, `{"type":"elicit_response","request_id":"x","value":"hello"}`, `{"value":"hello"}`, ""},
		{"secret", KindSecret, `{"type":"elicit_response","request_id":"x","value":"s"}`, `{"ok":true}`, ""},
		{"array", KindArray, `{"type":"elicit_response","request_id":"x","values":["a","b"]}`, `{"values":["a","b"]}`, ""},
		{"empty array", KindArray, `{"type":"elicit_response","request_id":"x","values":[]}`, `{"values":[]}`, ""},
		{"cancel", KindText, `{"type":"elicit_response","request_id":"x"}`, "", "user cancelled elicit request"},
		{"other payload", KindText, `{"type":"custom","data":{}}`, "", "unexpected IPC payload type in elicit response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseResponse([]byte(tc.payload))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := Result(tc.kind, a)
			if err != nil || string(out) != tc.result {
				t.Fatalf("Result: %s %v, want %s", out, err, tc.result)
			}
		})
	}
	p, _ := ResponsePayload(uuid.Nil, &v, nil)
	if string(p) != `{"type":"elicit_response","request_id":"00000000-0000-0000-0000-000000000000","value":"hello"}` {
		t.Fatalf("ResponsePayload: %s", p)
	}
}

// TestCheckValue: --set values are checked against the request; errors name the key and never
// show a secret.
func TestCheckValue(t *testing.T) {
	field := func(req string) Field {
		_, f, err := ParseRequest([]byte(req))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	sel := field(`{"type":"select","key":"tier","options":["free","pro"]}`)
	if v, _, err := CheckValue(sel, "pro"); err != nil || *v != "pro" {
		t.Fatalf("select pro: %v", err)
	}
	if _, _, err := CheckValue(sel, "gold"); err == nil || err.Error() != `tier: "gold" is not one of its options: ["free" "pro"]` {
		t.Fatalf("select gold: %v", err)
	}
	if _, _, err := CheckValue(field(`{"type":"secret","key":"k"}`), ""); err == nil || !strings.Contains(err.Error(), "k: a secret must not be empty") {
		t.Fatalf("empty secret: %v", err)
	}
	if _, vs, err := CheckValue(field(`{"type":"array","key":"a"}`), `["x","y"]`); err != nil || len(vs) != 2 {
		t.Fatalf("array: %v %v", vs, err)
	}
	if _, _, err := CheckValue(field(`{"type":"array","key":"a"}`), `x`); err == nil {
		t.Fatal("array x: no error")
	}
}
