package astrid

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParseVerdictUpstreamVectors checks the verdict bytes of upstream's dispatcher tests.
func TestParseVerdictUpstreamVectors(t *testing.T) {
	tests := []struct {
		name string
		out  []byte
		kind VerdictKind
		data []byte
	}{
		{"empty is continue", []byte{}, VerdictContinue, nil},
		{"continue with data", []byte{0, 1, 2, 3}, VerdictContinue, []byte{1, 2, 3}},
		{"final with data", []byte{1, 4, 5}, VerdictFinal, []byte{4, 5}},
		{"deny with reason", []byte{2, 'n', 'o'}, VerdictDeny, []byte("no")},
		{"unknown status is continue with everything", []byte{0xFF, 1}, VerdictContinue, []byte{0xFF, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ParseVerdict(tt.out)
			if v.Kind() != tt.kind || !bytes.Equal(v.Data(), tt.data) {
				t.Fatalf("ParseVerdict(%v) = %v %v, want %v %v", tt.out, v.Kind(), v.Data(), tt.kind, tt.data)
			}
		})
	}
}

func TestVerdictEncode(t *testing.T) {
	tests := []struct {
		name string
		v    Verdict
		want []byte
	}{
		{"zero", Verdict{}, nil},
		{"continue nil", Continue(nil), nil},
		{"continue data", Continue([]byte(`{"a":1}`)), append([]byte{0}, `{"a":1}`...)},
		{"final empty", Final(nil), []byte{1}},
		{"final data", Final([]byte("r")), []byte{1, 'r'}},
		{"deny", Deny("nope"), append([]byte{2}, "nope"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.v.Encode()
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Encode = %v, want %v", got, tt.want)
			}
			if back := ParseVerdict(got); back.Kind() != tt.v.Kind() || !bytes.Equal(back.Data(), tt.v.Data()) {
				t.Fatalf("round trip = %v %q", back.Kind(), back.Data())
			}
		})
	}
	if VerdictDeny.String() != "deny" || VerdictKind(9).String() != "VerdictKind(0x09)" {
		t.Fatal("VerdictKind.String")
	}
}

func TestDecodeHookInput(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		action string
		pay    []byte
		err    string
	}{
		{"upstream shape", `{"name":"on_x","arguments":[123,34,97,34,58,49,125]}`, "on_x", []byte(`{"a":1}`), ""},
		{"spaces", ` { "arguments" : [ 0 , 255 ,1 ] , "name" : "a" } `, "a", []byte{0, 255, 1}, ""},
		{"empty array", `{"name":"a","arguments":[]}`, "a", []byte{}, ""},
		{"null arguments", `{"name":"a","arguments":null}`, "a", []byte{}, ""},
		{"no arguments", `{"name":"a"}`, "a", []byte{}, ""},
		{"no name", `{"arguments":[1]}`, "", nil, `no "name"`},
		{"not JSON", `{"name":`, "", nil, "is not {"},
		{"256", `{"name":"a","arguments":[256]}`, "", nil, "element 0 is not an integer from 0 to 255"},
		{"negative", `{"name":"a","arguments":[1,-1]}`, "", nil, "element 1"},
		{"fraction", `{"name":"a","arguments":[1.5]}`, "", nil, "element 0"},
		{"exponent", `{"name":"a","arguments":[1e2]}`, "", nil, "element 0"},
		{"leading zero", `{"name":"a","arguments":[01]}`, "", nil, "is not {"}, // invalid JSON already
		{"string element", `{"name":"a","arguments":["1"]}`, "", nil, "element 0"},
		{"base64 string", `{"name":"a","arguments":"AQI="}`, "", nil, "not an array of bytes"},
		{"huge number", `{"name":"a","arguments":[100000]}`, "", nil, "element 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeHookInput([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || ev.Action != tt.action || !bytes.Equal(ev.Payload, tt.pay) {
				t.Fatalf("= %q %v, %v; want %q %v", ev.Action, ev.Payload, err, tt.action, tt.pay)
			}
		})
	}
}

func TestEncodeHookInputMatchesSerde(t *testing.T) {
	// serde_json serialises Vec<u8> as an array of numbers: what encoding/json produces for
	// []int.
	pay := []byte{0, 9, 10, 99, 100, 255, '"'}
	ints := make([]int, len(pay))
	for i, c := range pay {
		ints[i] = int(c)
	}
	want, _ := json.Marshal(map[string]any{"name": "act\"ion", "arguments": ints})
	got := EncodeHookInput(HookEvent{Action: "act\"ion", Payload: pay})
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil || !jsonEqual(a, b) {
		t.Fatalf("EncodeHookInput = %s, want %s", got, want)
	}
	ev, err := DecodeHookInput(got)
	if err != nil || ev.Action != "act\"ion" || !bytes.Equal(ev.Payload, pay) {
		t.Fatalf("round trip = %+v, %v", ev, err)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestInterceptorsDispatch(t *testing.T) {
	var seen HookEvent
	is := Interceptors{
		"keep": func(ev HookEvent) (Verdict, error) { seen = ev; return Continue(nil), nil },
		"deny": func(ev HookEvent) (Verdict, error) { return Deny("no " + string(ev.Payload)), nil },
		"fail": func(HookEvent) (Verdict, error) { return Verdict{}, errors.New("handler broke") },
		"json": func(ev HookEvent) (Verdict, error) {
			var p struct{ N int }
			if err := ev.Decode(&p); err != nil {
				return Verdict{}, err
			}
			return Final([]byte{byte('0' + p.N)}), nil
		},
	}
	tests := []struct {
		name string
		ev   HookEvent
		want []byte
		err  string
	}{
		{"continue nil is no output", HookEvent{"keep", []byte("x")}, nil, ""},
		{"deny", HookEvent{"deny", []byte("way")}, append([]byte{2}, "no way"...), ""},
		{"json payload", HookEvent{"json", []byte(`{"N":7}`)}, []byte{1, '7'}, ""},
		{"bad json payload", HookEvent{"json", []byte(`{`)}, nil, "interceptor json: decoding the payload"},
		{"handler error", HookEvent{"fail", nil}, nil, "handler broke"},
		{"unknown action", HookEvent{"other", nil}, nil, `no interceptor handles action "other" (handled: "deny", "fail", "json", "keep")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := is.Dispatch(EncodeHookInput(tt.ev))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("= %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if seen.Action != "keep" || string(seen.Payload) != "x" {
		t.Fatalf("handler saw %+v", seen)
	}
	if _, err := (Interceptors{}).Dispatch(EncodeHookInput(HookEvent{Action: "a"})); err == nil || !strings.Contains(err.Error(), "(handled: none)") {
		t.Fatalf("empty set: err = %v", err)
	}
}

func FuzzParseVerdict(f *testing.F) {
	for _, s := range [][]byte{{}, {0, 1, 2, 3}, {1, 4, 5}, {2, 'n', 'o'}, {0xFF, 1}, {0}, {3}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		v := ParseVerdict(out)
		switch {
		case len(out) == 0:
			if v.Kind() != VerdictContinue || len(v.Data()) != 0 {
				t.Fatalf("%v: %v %v", out, v.Kind(), v.Data())
			}
		case out[0] <= 2:
			if byte(v.Kind()) != out[0] || !bytes.Equal(v.Data(), out[1:]) {
				t.Fatalf("%v: %v %v", out, v.Kind(), v.Data())
			}
		default:
			if v.Kind() != VerdictContinue || !bytes.Equal(v.Data(), out) {
				t.Fatalf("%v: %v %v", out, v.Kind(), v.Data())
			}
		}
		// Encoding what was parsed parses back to the same verdict.
		w := ParseVerdict(v.Encode())
		if w.Kind() != v.Kind() || !bytes.Equal(w.Data(), v.Data()) {
			t.Fatalf("%v: re-encoded as %v %v", out, w.Kind(), w.Data())
		}
	})
}

// FuzzDecodeHookInput checks the hand-written byte-array decoder against encoding/json: where
// it accepts an input, encoding/json decodes the same action and the same numbers; where
// encoding/json decodes an array of 0-255 integers, it accepts too.
func FuzzDecodeHookInput(f *testing.F) {
	f.Add([]byte(`{"name":"a","arguments":[1,2,255]}`))
	f.Add([]byte(`{"name":"a","arguments":[]}`))
	f.Add([]byte(`{"name":"a","arguments":null}`))
	f.Add([]byte(`{"name":"a","arguments":[1.0, 2e1, -0, 256]}`))
	f.Add([]byte(`{"name":"","arguments":[ 0 ,0]}`))
	f.Add(EncodeHookInput(HookEvent{"x", []byte("hello")}))
	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := DecodeHookInput(in)
		var ref struct {
			Name      *string            `json:"name"`
			Arguments *[]json.RawMessage `json:"arguments"`
		}
		refErr := json.Unmarshal(in, &ref)
		refBytes, refOK := []byte{}, refErr == nil && ref.Name != nil
		if refOK && ref.Arguments != nil {
			for _, n := range *ref.Arguments {
				var c uint8
				if !isPlainUint(n) || json.Unmarshal(n, &c) != nil {
					refOK = false
					break
				}
				refBytes = append(refBytes, c)
			}
		}
		if refOK {
			// Also reject what is not an array at all (a string, a number, an object).
			var probe struct {
				Arguments json.RawMessage `json:"arguments"`
			}
			_ = json.Unmarshal(in, &probe)
			if a := bytes.TrimSpace(probe.Arguments); len(a) > 0 && a[0] != '[' && string(a) != "null" {
				refOK = false
			}
		}
		if refOK != (err == nil) {
			t.Fatalf("%q: decoder err = %v, reference ok = %v (%v)", in, err, refOK, refErr)
		}
		if err == nil && (ev.Action != *ref.Name || !bytes.Equal(ev.Payload, refBytes)) {
			t.Fatalf("%q: = %q %v, reference %q %v", in, ev.Action, ev.Payload, *ref.Name, refBytes)
		}
	})
}

// isPlainUint reports whether n is a JSON integer with digits only (what serde writes for u8).
func isPlainUint(n json.RawMessage) bool {
	n = bytes.TrimSpace(n)
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
