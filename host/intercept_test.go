package host

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/manifest"
)

// TestDecodeVerdict: upstream's InterceptResult::from_guest_bytes vectors.
func TestDecodeVerdict(t *testing.T) {
	tests := []struct {
		name string
		out  []byte
		want Verdict
	}{
		{"empty is continue with no bytes", []byte{}, Verdict{Kind: Continue}},
		{"0x00 is continue with the rest", []byte{0, 1, 2, 3}, Verdict{Kind: Continue, Data: []byte{1, 2, 3}}},
		{"0x01 is final with the rest", []byte{1, 4, 5}, Verdict{Kind: Final, Data: []byte{4, 5}}},
		{"0x02 is deny with the rest as reason", []byte{2, 'n', 'o'}, Verdict{Kind: Deny, Reason: "no"}},
		{"another first byte is continue with everything", []byte{0xFF, 1}, Verdict{Kind: Continue, Data: []byte{0xFF, 1}}},
		{"0x00 alone is continue with no bytes", []byte{0}, Verdict{Kind: Continue, Data: []byte{}}},
		{"a reason that is not UTF-8 is read lossily", []byte{2, 'a', 0xff, 'b'}, Verdict{Kind: Deny, Reason: "a\uFFFDb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DecodeVerdict(tc.out)
			if got.Kind != tc.want.Kind || !bytes.Equal(got.Data, tc.want.Data) || got.Reason != tc.want.Reason {
				t.Fatalf("DecodeVerdict(%v) = %+v, want %+v", tc.out, got, tc.want)
			}
		})
	}
}

// TestHookInput: upstream's input, {"name": action, "arguments": [bytes as numbers]}, and its
// limit.
func TestHookInput(t *testing.T) {
	tests := []struct {
		name, action string
		payload      []byte
		want         string
	}{
		{"bytes as numbers", "on_event", []byte(`{"a":1}`), `{"name":"on_event","arguments":[123,34,97,34,58,49,125]}`},
		{"empty payload", "x", nil, `{"name":"x","arguments":[]}`},
		{"action escaped as JSON, not for HTML", "a\"<b>\n", []byte{0, 255}, `{"name":"a\"<b>\n","arguments":[0,255]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hookInput(tc.action, tc.payload)
			if err != nil || string(got) != tc.want {
				t.Fatalf("hookInput = %s, %v; want %s", got, err, tc.want)
			}
			var back struct {
				Name      string `json:"name"`
				Arguments []byte `json:"-"`
			}
			if err := json.Unmarshal(got, &back); err != nil || back.Name != tc.action {
				t.Fatalf("round trip: %+v %v", back, err)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		_, err := hookInput("x", bytes.Repeat([]byte{255}, MaxInputBytes/4+1))
		if err == nil || !strings.Contains(err.Error(), "a call's input is limited to 10485760 bytes") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestCallerJSON: the caller context is upstream's astrid_get_caller JSON: principal (null when
// the message has none), source_id and timestamp (chrono's to_rfc3339: "+00:00").
func TestCallerJSON(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123_000_000, time.UTC)
	src := "6f1c1c3e-1234-4abc-9def-0123456789ab"
	tests := []struct {
		name          string
		msg           bus.Message
		want          string
		wantPrincipal string
	}{
		{"principal", bus.Message{Principal: "alice", SourceID: src, Timestamp: ts},
			`{"principal":"alice","source_id":"` + src + `","timestamp":"2026-01-02T03:04:05.123+00:00"}`, "alice"},
		{"no principal", bus.Message{SourceID: src, Timestamp: ts.Truncate(time.Second)},
			`{"principal":null,"source_id":"` + src + `","timestamp":"2026-01-02T03:04:05+00:00"}`, ""},
		{"host event", bus.Message{Principal: "default", Timestamp: ts},
			`{"principal":"default","source_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-01-02T03:04:05.123+00:00"}`, "default"},
		{"invalid principal is shown but not acted for", bus.Message{Principal: "../x<y>", SourceID: src, Timestamp: ts},
			`{"principal":"../x<y>","source_id":"` + src + `","timestamp":"2026-01-02T03:04:05.123+00:00"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCallerContext(&tc.msg)
			if string(c.json) != tc.want || c.principal != tc.wantPrincipal {
				t.Fatalf("caller %s (acts for %q), want %s (%q)", c.json, c.principal, tc.want, tc.wantPrincipal)
			}
		})
	}
}

// TestParseTriggerRequest: astrid_trigger_hook's request as upstream's serde struct reads it, and
// the payload re-serialised as serde_json::Value does (compact, keys sorted).
func TestParseTriggerRequest(t *testing.T) {
	tests := []struct {
		name, req, hook, payload, err string
	}{
		{"object payload sorted and compact", `{"hook":"a.b","payload":{"z":1, "a":[true,null,"<&>"],"m":1.50}}`, "a.b", `{"a":[true,null,"<&>"],"m":1.50,"z":1}`, ""},
		{"other keys ignored", `{"payload":3,"hook":"h","extra":{}}`, "h", `3`, ""},
		{"null payload", `{"hook":"h","payload":null}`, "h", `null`, ""},
		{"duplicate keys: the last wins", `{"hook":"h","payload":{"k":1,"k":2}}`, "h", `{"k":2}`, ""},
		{"missing hook", `{"payload":1}`, "", "", "missing field `hook`"},
		{"missing payload", `{"hook":"h"}`, "", "", "missing field `payload`"},
		{"hook not a string", `{"hook":1,"payload":1}`, "", "", "hook: want a string, got a number"},
		{"keys are case-sensitive", `{"Hook":"h","payload":1}`, "", "", "missing field `hook`"},
		{"not an object", `[1]`, "", "", "want a JSON object"},
		{"not JSON", `{"hook":`, "", "", "not JSON"},
		{"invalid UTF-8", "{\"hook\":\"\xff\",\"payload\":1}", "", "", "not JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hook, payload, err := parseTriggerRequest([]byte(tc.req))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || hook != tc.hook || string(payload) != tc.payload {
				t.Fatalf("= %q, %s, %v; want %q, %s", hook, payload, err, tc.hook, tc.payload)
			}
		})
	}
}

// TestWaitGraph: an edge that would close a cycle of instances waiting for each other's
// interceptors is refused; released edges no longer count.
func TestWaitGraph(t *testing.T) {
	inst := func(name string) *Instance {
		return &Instance{manifest: &manifest.Manifest{Package: manifest.Package{Name: name}}}
	}
	a, b, c := inst("a"), inst("b"), inst("c")
	var g waitGraph
	relAB, err := g.wait(a, b)
	if err != nil {
		t.Fatal(err)
	}
	relBC, err := g.wait(b, c)
	if err != nil {
		t.Fatal(err)
	}
	// c → a would close a → b → c → a; c → b would close b → c → b.
	for _, e := range [][2]*Instance{{c, a}, {c, b}, {b, a}} {
		if _, err := g.wait(e[0], e[1]); err == nil || !strings.Contains(err.Error(), "capsule "+e[1].ID()+" is itself waiting") {
			t.Fatalf("wait %s → %s: %v", e[0].ID(), e[1].ID(), err)
		}
	}
	// a → c closes nothing.
	relAC, err := g.wait(a, c)
	if err != nil {
		t.Fatal(err)
	}
	relAC()
	relBC()
	relAB()
	if len(g.edges) != 0 {
		t.Fatalf("edges left: %v", g.edges)
	}
	// Two waits on the same edge count twice.
	r1, _ := g.wait(a, b)
	r2, _ := g.wait(a, b)
	r1()
	if !g.reaches(a, b) {
		t.Fatal("one wait released, one left")
	}
	r2()
	if g.reaches(a, b) {
		t.Fatal("both released")
	}
}
