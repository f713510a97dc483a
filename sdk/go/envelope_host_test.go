package astrid

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHostEnvelope: an envelope in the host's exact form is read by hostEnvelope; any other form
// by the general walk, and either way the result is what json.Unmarshal gives.
func TestHostEnvelope(t *testing.T) {
	const stamp, src = "2026-03-25T10:00:00.5Z", "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f"
	m1 := hostMsg("a.b", `{"type":"custom","data":{"ping":1}}`, src, stamp, 7, "default")
	m2 := hostMsg("a.c", `{"type":"custom","data":"x"}`, src, stamp, 8, "")
	for _, c := range []struct {
		name, in   string
		host, fast bool // read by hostEnvelope; by the fast path at all
	}{
		{"one", `{"messages":[` + m1 + `],"dropped":0,"lagged":0}`, true, true},
		{"two", `{"messages":[` + m1 + `,` + m2 + `],"dropped":0,"lagged":12}`, true, true},
		{"none", `{"messages":[],"dropped":0,"lagged":3}`, true, true},
		{"dropped", `{"messages":[` + m1 + `],"dropped":1,"lagged":0}`, true, true},
		{"trailing whitespace", `{"messages":[` + m1 + `],"dropped":0,"lagged":0}` + " \n", true, true},
		{"leading whitespace", ` {"messages":[` + m1 + `],"dropped":0,"lagged":0}`, false, true},
		{"whitespace inside", `{"messages": [` + m1 + `] ,"dropped":0,"lagged":0}`, false, true},
		{"reordered", `{"lagged":2,"messages":[` + m1 + `],"dropped":0}`, false, true},
		{"no lagged", `{"messages":[` + m1 + `],"dropped":0}`, false, true},
		{"no dropped", `{"messages":[` + m1 + `],"lagged":0}`, false, true},
		{"messages only", `{"messages":[` + m1 + `]}`, false, true},
		{"extra key", `{"messages":[` + m1 + `],"dropped":0,"lagged":0,"x":[1]}`, false, true},
		{"general message", `{"messages":[{"seq":1,"topic":"a"}],"dropped":0,"lagged":0}`, true, true},
		{"lagged max", `{"messages":[],"dropped":0,"lagged":18446744073709551615}`, true, true},
		{"lagged overflow", `{"messages":[],"dropped":0,"lagged":18446744073709551616}`, false, false},
		{"lagged leading zero", `{"messages":[],"dropped":0,"lagged":00}`, false, false},
		{"dropped leading zero", `{"messages":[],"dropped":00,"lagged":0}`, false, false},
		{"lagged negative", `{"messages":[],"dropped":0,"lagged":-1}`, false, false},
		{"lagged fraction", `{"messages":[],"dropped":0,"lagged":1.5}`, false, false},
		{"duplicate messages", `{"messages":[` + m1 + `],"messages":[` + m2 + `],"dropped":0,"lagged":0}`, false, false},
		{"duplicate lagged", `{"messages":[],"dropped":0,"lagged":1,"lagged":2}`, false, false},
		{"null messages", `{"messages":null,"dropped":0,"lagged":0}`, false, false},
		{"bad message", `{"messages":[` + m1 + `,{"topic":1}],"dropped":0,"lagged":0}`, false, false},
		{"trailing garbage", `{"messages":[` + m1 + `],"dropped":0,"lagged":0}x`, false, false},
		{"two envelopes", `{"messages":[],"dropped":0,"lagged":0}{}`, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := envScanner{b: []byte(c.in), cache: new(envCache), first: new([1]Message)}
			var env Envelope
			if got := s.hostEnvelope(&env) && len(strings.TrimLeft(c.in[s.i:], " \n")) == 0; got != c.host {
				t.Errorf("hostEnvelope = %v, want %v", got, c.host)
			}
			if got := checkSameAsJSON(t, []byte(c.in)); got != c.fast {
				t.Errorf("fast path decoded = %v, want %v", got, c.fast)
			}
			// Cut short anywhere: still what encoding/json says.
			for n := range len(c.in) {
				checkSameAsJSON(t, []byte(c.in[:n]))
			}
		})
	}
}

// TestDecodeEnvelopeKeptStrings: the strings kept from one envelope for the next (lastCache)
// are the last ones decoded, except one longer than maxKeptString, which is not kept.
func TestDecodeEnvelopeKeptStrings(t *testing.T) {
	const src, stamp = "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f", "2026-03-25T10:00:00Z"
	long := strings.Repeat("p", maxKeptString+1)
	for _, c := range []struct{ topic, principal string }{{"a.b", "default"}, {"a.b", long}, {"c.d", "other"}} {
		env := `{"messages":[` + hostMsg(c.topic, `{"type":"custom","data":1}`, src, stamp, 1, c.principal) + `],"dropped":0,"lagged":0}`
		if !checkSameAsJSON(t, []byte(env)) {
			t.Fatalf("fast path failed on %s", env)
		}
		kept := lastCache.Load()
		wantPrincipal := c.principal
		if len(wantPrincipal) > maxKeptString {
			wantPrincipal = ""
		}
		if kept == nil || kept.topic.s != c.topic || kept.source.s != src || kept.principal.s != wantPrincipal {
			t.Fatalf("after %s/%.10s…: kept %+v", c.topic, c.principal, kept)
		}
	}
}

// TestDecodeEnvelopeConcurrent: goroutines decoding envelopes at once (a capsule's goroutines
// may) each get their own envelope's strings, whatever the others decode.
func TestDecodeEnvelopeConcurrent(t *testing.T) {
	const src, stamp = "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f", "2026-03-25T10:00:00.25Z"
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			topic := fmt.Sprintf("g%d.topic", g)
			principal := fmt.Sprintf("user%d", g)
			for i := range 500 {
				b := []byte(`{"messages":[` + hostMsg(topic, `{"type":"custom","data":1}`, src, stamp, i+1, principal) + `],"dropped":0,"lagged":0}`)
				env, ok := decodeEnvelopeFast(b)
				if !ok || len(env.Messages) != 1 {
					errs <- fmt.Errorf("goroutine %d: fast path failed on %s", g, b)
					return
				}
				if m := env.Messages[0]; m.Topic != topic || m.Principal != principal || m.SourceID != src || m.Seq != uint64(i+1) {
					errs <- fmt.Errorf("goroutine %d: got %+v", g, m)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKeptTemplate: the message hostMessage reads in full is kept (a copy) for the first message
// of the next envelope, which, when its bytes but its payload, timestamp and seq are the same,
// takes its strings from it; a template over maxKeptTemplate bytes is not kept.
func TestKeptTemplate(t *testing.T) {
	const src = "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f"
	c := new(envCache)
	read := func(msg string) Message {
		t.Helper()
		s := envScanner{b: []byte(msg), cache: c, tmpl: c.tmpl.msgTemplate}
		var m Message
		if !s.hostMessage(&m) || s.i != len(msg) {
			t.Fatalf("hostMessage failed on %s", msg)
		}
		s.keepTemplate()
		return m
	}
	read(hostMsg("a.b", `{"type":"custom","data":1}`, src, "2026-03-25T10:00:00Z", 7, "default"))
	if string(c.tmpl.head) != `{"topic":"a.b","payload":` || string(c.tmpl.mid) != `,"signature":null,"source_id":"`+src+`","timestamp":` ||
		string(c.tmpl.tail) != `,"principal":"default"}` {
		t.Fatalf("kept %q, %q, %q", c.tmpl.head, c.tmpl.mid, c.tmpl.tail)
	}
	// Marked: a message read through the kept template has its strings.
	c.tmpl.topic, c.tmpl.source, c.tmpl.principal = "T", "S", "P"
	m := read(hostMsg("a.b", `{"type":"custom","data":[2]}`, src, "2026-03-25T10:00:01.5Z", 8, "default"))
	if m.Topic != "T" || m.SourceID != "S" || m.Principal != "P" || m.Seq != 8 || string(m.Payload) != `{"type":"custom","data":[2]}` ||
		m.Timestamp != time.Date(2026, 3, 25, 10, 0, 1, 5e8, time.UTC) {
		t.Fatalf("through the kept template: %+v", m)
	}
	// Another topic: read in full, and kept in its turn.
	if m := read(hostMsg("a.c", `{"type":"custom","data":1}`, src, "2026-03-25T10:00:00Z", 9, "default")); m.Topic != "a.c" || m.SourceID != src {
		t.Fatalf("read in full: %+v", m)
	}
	if c.tmpl.topic != "a.c" || string(c.tmpl.head) != `{"topic":"a.c","payload":` {
		t.Fatalf("kept %q for %q", c.tmpl.head, c.tmpl.topic)
	}
	// Too long to keep.
	long := strings.Repeat("x", maxKeptTemplate)
	read(hostMsg(long, `{"type":"custom","data":1}`, src, "2026-03-25T10:00:00Z", 10, "default"))
	if c.tmpl.head != nil || c.tmpl.topic != "" {
		t.Fatalf("kept a template of %d bytes", len(c.tmpl.head)+len(c.tmpl.mid)+len(c.tmpl.tail))
	}
}
