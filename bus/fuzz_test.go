package bus

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/bus/topics"
)

// FuzzCheckSubscribePattern checks that pattern validation never panics,
// that what it accepts has the promised shape, and that subscribing to any
// string is safe.
func FuzzCheckSubscribePattern(f *testing.F) {
	for _, s := range []string{"a", "a.*.b", "*", "", "a..b", "\xff", strings.Repeat("a.", 9) + "a", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := topics.CheckSubscribePattern(p)
		if pubErr := topics.CheckPublishTopic(p); (err == nil) != (pubErr == nil) {
			t.Fatalf("topics.CheckSubscribePattern(%q) = %v but CheckPublishTopic = %v", p, err, pubErr)
		}
		if err == nil {
			if len(p) > topics.MaxTopicBytes || !utf8.ValidString(p) || strings.Count(p, ".") >= topics.MaxGuestSegments || topics.CheckSegments(p) != nil {
				t.Fatalf("topics.CheckSubscribePattern(%q) accepted it", p)
			}
			if !topics.Covers(p, p) || !topics.Match(p, p) {
				t.Fatalf("valid pattern %q does not cover or match itself", p)
			}
		}
		b := New(Options{QueueMessages: 2})
		s := b.Subscribe(p)
		b.Publish(Message{Topic: p})
		if st := s.Stats(); (st.Matched == 1) != topics.Match(p, p) {
			t.Fatalf("subscription %q: matched %d, Match = %v", p, st.Matched, topics.Match(p, p))
		}
		s.Close()
		if b.Subscriptions() != 0 || !b.index.root.empty() {
			t.Fatalf("subscription %q not removed", p)
		}
	})
}

// FuzzPayloadFromGuest checks that payload conversion never panics and that
// what it returns is a compact, tagged JSON object that converts to itself.
func FuzzPayloadFromGuest(f *testing.F) {
	for _, s := range []string{
		`{"type":"my_plugin_msg","foo":1}`, `{"foo":1,"bar":"baz"}`, `"hello"`, `{"type":"connect"}`,
		`{"type":"user_input"}`, `{"type":"custom","data":{"foo":1}}`, `not json at all`,
		`{"type":"raw_json","a":[1,2]}`, `{"type":"user_input","text":"x","context":{"a":null}}`,
		`{"type":"onboarding_required","capsule_id":"c","fields":[{"key":"k","prompt":"p","field_type":{"Enum":["a"]}}]}`,
		`{"type":"elicit_response","request_id":"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}","values":null}`,
		`"\ud83d\ude00"`, `1e999`, `[[[[]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := PayloadFromGuest(raw)
		if err != nil {
			if err != guard.ErrPayloadNotJSON {
				t.Fatalf("error %v", err)
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("accepted invalid JSON %q", raw)
		}
		if slow := convertSlow(raw); !bytes.Equal(out, slow) {
			t.Fatalf("PayloadFromGuest(%q) = %q; the full scan gives %q", raw, out, slow)
		}
		if !json.Valid(out) {
			t.Fatalf("PayloadFromGuest(%q) = invalid JSON %q", raw, out)
		}
		var buf bytes.Buffer
		if json.Compact(&buf, out) != nil || !bytes.Equal(buf.Bytes(), out) {
			t.Fatalf("PayloadFromGuest(%q) = %q, not compact", raw, out)
		}
		members, err := objectMembers(out)
		if err != nil || len(members) == 0 || members[0].key != "type" {
			t.Fatalf("PayloadFromGuest(%q) = %q, not a tagged object", raw, out)
		}
		if !json.Valid(GuestBytes(out)) {
			t.Fatalf("GuestBytes(%q) = invalid JSON %q", out, GuestBytes(out))
		}
		if guard.CheckPayload(out) == nil { // wrapping may have made it one level too deep
			again, err := PayloadFromGuest(out)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("PayloadFromGuest(%q) = %q, which converts to %q, %v", raw, out, again, err)
			}
		}
	})
}
