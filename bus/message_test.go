package bus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMessageJSON(t *testing.T) {
	ts := time.Date(2026, 3, 25, 10, 0, 0, 123456789, time.UTC)
	src := "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	cases := []struct {
		name string
		m    Message
		want string
	}{
		{"upstream's example", Message{Topic: "foo.bar", Payload: json.RawMessage(`{"type":"custom","data":{"x":1}}`), SourceID: src, Timestamp: ts, Seq: 42, Principal: "default"},
			`{"topic":"foo.bar","payload":{"type":"custom","data":{"x":1}},"signature":null,"source_id":"` + src + `","timestamp":"2026-03-25T10:00:00.123456789Z","seq":42,"principal":"default"}`},
		{"no principal, host source", Message{Topic: "a", Payload: json.RawMessage(`{"type":"connect"}`), Timestamp: ts.Truncate(time.Second), Seq: 1},
			`{"topic":"a","payload":{"type":"connect"},"signature":null,"source_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-03-25T10:00:00Z","seq":1}`},
		{"milliseconds, other zone, escapes", Message{Topic: "a\"<b>", Payload: json.RawMessage(`{"type":"connect"}`), SourceID: src, Timestamp: time.Date(2026, 3, 25, 12, 0, 0, 120_000_000, time.FixedZone("x", 2*3600)), Principal: "p\n"},
			`{"topic":"a\"<b>","payload":{"type":"connect"},"signature":null,"source_id":"` + src + `","timestamp":"2026-03-25T10:00:00.120Z","seq":0,"principal":"p\n"}`},
		{"microseconds", Message{Topic: "a", Payload: json.RawMessage(`{"type":"connect"}`), SourceID: src, Timestamp: ts.Truncate(time.Microsecond)},
			`{"topic":"a","payload":{"type":"connect"},"signature":null,"source_id":"` + src + `","timestamp":"2026-03-25T10:00:00.123456Z","seq":0}`},
		{"no payload", Message{Topic: "a", SourceID: src, Timestamp: ts},
			`{"topic":"a","payload":null,"signature":null,"source_id":"` + src + `","timestamp":"2026-03-25T10:00:00.123456789Z","seq":0}`},
	}
	for _, c := range cases {
		// Called directly: json.Marshal would re-escape <, > and & (still
		// the same JSON value).
		got, err := c.m.MarshalJSON()
		if err != nil || string(got) != c.want {
			t.Errorf("%s: Marshal =\n  %s, %v\nwant\n  %s", c.name, got, err, c.want)
			continue
		}
		if _, err := json.Marshal(c.m); err != nil {
			t.Errorf("%s: json.Marshal: %v", c.name, err)
		}
		if c.m.Payload == nil {
			continue
		}
		var back Message
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%s: Unmarshal: %v", c.name, err)
			continue
		}
		want := c.m
		want.Timestamp = want.Timestamp.UTC()
		if want.SourceID == "" {
			want.SourceID = NilSourceID
		}
		if back.Topic != want.Topic || string(back.Payload) != string(want.Payload) || back.SourceID != want.SourceID ||
			!back.Timestamp.Equal(want.Timestamp) || back.Seq != want.Seq || back.Principal != want.Principal {
			t.Errorf("%s: round trip = %+v, want %+v", c.name, back, want)
		}
	}
}

func TestMessageUnmarshalErrors(t *testing.T) {
	full := map[string]string{
		"topic":     `"a.b"`,
		"payload":   `{"type":"connect"}`,
		"source_id": `"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`,
		"timestamp": `"2026-03-25T10:00:00Z"`,
	}
	build := func(drop, key, value string) string {
		var parts []string
		for k, v := range full {
			if k != drop {
				parts = append(parts, `"`+k+`":`+v)
			}
		}
		if key != "" {
			parts = append(parts, `"`+key+`":`+value)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	var m Message
	if err := json.Unmarshal([]byte(build("", "principal", "null")), &m); err != nil || m.Principal != "" || m.Seq != 0 {
		t.Fatalf("minimal message: %+v, %v", m, err)
	}
	bad := []string{
		build("topic", "", ""),
		build("payload", "", ""),
		build("source_id", "", ""),
		build("timestamp", "", ""),
		build("payload", "payload", `"text"`),
		build("source_id", "source_id", `"not-a-uuid"`),
		build("timestamp", "timestamp", `"yesterday"`),
		build("", "seq", `-1`),
		build("", "principal", `7`),
		build("topic", "Topic", `"a.b"`), // keys are case-sensitive
		`[]`,
	}
	for _, in := range bad {
		if err := json.Unmarshal([]byte(in), &m); err == nil {
			t.Errorf("Unmarshal(%s) = nil error", in)
		}
	}
}

func TestEnvelopeJSON(t *testing.T) {
	got, err := json.Marshal(Envelope{})
	if err != nil || string(got) != `{"messages":[],"dropped":0,"lagged":0}` {
		t.Fatalf("empty envelope = %s, %v", got, err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env := Envelope{Lagged: 3, Messages: []Message{
		{Topic: "a", Payload: json.RawMessage(`{"type":"connect"}`), Timestamp: ts, Seq: 1},
		{Topic: "b", Payload: json.RawMessage(`{"type":"custom","data":1}`), Timestamp: ts, Seq: 2, Principal: "p"},
	}}
	got, err = json.Marshal(env)
	want := `{"messages":[` +
		`{"topic":"a","payload":{"type":"connect"},"signature":null,"source_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-01-02T03:04:05Z","seq":1},` +
		`{"topic":"b","payload":{"type":"custom","data":1},"signature":null,"source_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-01-02T03:04:05Z","seq":2,"principal":"p"}` +
		`],"dropped":0,"lagged":3}`
	if err != nil || string(got) != want {
		t.Fatalf("envelope =\n  %s, %v\nwant\n  %s", got, err, want)
	}
	var back Envelope
	if err := json.Unmarshal(got, &back); err != nil || len(back.Messages) != 2 || back.Lagged != 3 || back.Messages[1].Principal != "p" {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
}

// TestEnvelopeSharedTimestamps checks that an envelope whose messages share timestamps (a batch's
// do), in runs and interleaved, in another zone, on a buffer that already holds bytes, encodes
// each message exactly as its own MarshalJSON does.
func TestEnvelopeSharedTimestamps(t *testing.T) {
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 123_000_000, time.UTC)
	t2 := time.Date(2026, 1, 2, 3, 4, 5, 123_456_789, time.UTC)
	t1East := t1.In(time.FixedZone("east", 3600)) // the same instant
	for _, c := range []struct {
		name  string
		stamp []time.Time
	}{
		{"one run", []time.Time{t1, t1, t1}},
		{"two runs", []time.Time{t1, t1, t2, t2}},
		{"interleaved", []time.Time{t1, t2, t1, t2}},
		{"same instant, other zone", []time.Time{t1, t1East, t1}},
		{"zero time among them", []time.Time{t1, {}, t1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var env Envelope
			want := `prefix{"messages":[`
			for i, ts := range c.stamp {
				m := Message{Topic: "a", Payload: json.RawMessage(`{"type":"custom","data":1}`), Timestamp: ts, Seq: uint64(i + 1)}
				env.Messages = append(env.Messages, m)
				mj, _ := m.MarshalJSON()
				if i > 0 {
					want += ","
				}
				want += string(mj)
			}
			want += `],"dropped":0,"lagged":0}`
			if got := string(env.AppendJSON([]byte("prefix"))); got != want {
				t.Fatalf("envelope =\n  %s\nwant\n  %s", got, want)
			}
		})
	}
}

// TestEnvelopeSharedStrings checks that an envelope whose messages share topics, source ids and
// principals (a publisher's do), in runs and interleaved, with strings that need escapes, empty
// ones and a principal that comes and goes, encodes each message exactly as its own MarshalJSON
// does, on a buffer that already holds bytes and on one that must grow.
func TestEnvelopeSharedStrings(t *testing.T) {
	const src = "0b7c1e34-5d6f-4a8b-9c0d-1e2f3a4b5c6d"
	type strs struct{ topic, source, principal string }
	for _, c := range []struct {
		name string
		msgs []strs
	}{
		{"one publisher", []strs{{"a.b", src, "default"}, {"a.b", src, "default"}, {"a.b", src, "default"}}},
		{"topics interleaved", []strs{{"a.b", src, "default"}, {"a.c", src, "default"}, {"a.b", src, "default"}}},
		{"escapes", []strs{{"q\"t", "s\\", "p\n"}, {"q\"t", "s\\", "p\n"}, {"q\"u", "s\\", "p\u00e9\x01"}}},
		{"principal comes and goes", []strs{{"a", src, ""}, {"a", src, "default"}, {"a", src, ""}, {"a", src, "default"}}},
		{"nil source", []strs{{"a", "", ""}, {"a", NilSourceID, ""}, {"a", "", "x"}}},
		{"prefix of the last", []strs{{"ab", "s1", "pp"}, {"a", "s", "p"}, {"ab", "s1", "pp"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var env Envelope
			want := `{"messages":[`
			for i, st := range c.msgs {
				m := Message{Topic: st.topic, Payload: json.RawMessage(`{"type":"custom","data":1}`), SourceID: st.source, Principal: st.principal, Seq: uint64(i + 1)}
				env.Messages = append(env.Messages, m)
				mj, _ := m.MarshalJSON()
				if i > 0 {
					want += ","
				}
				want += string(mj)
			}
			want += `],"dropped":0,"lagged":0}`
			for _, prefix := range []string{"", "prefix"} {
				if got := string(env.AppendJSON([]byte(prefix))); got != prefix+want {
					t.Fatalf("envelope =\n  %s\nwant\n  %s", got, prefix+want)
				}
			}
			if !json.Valid([]byte(want)) {
				t.Fatalf("the envelope is not JSON: %s", want)
			}
		})
	}
}

// TestAppendTimestampDigits checks the digit-by-digit timestamp against the
// time.AppendFormat one over the edges of every field and of the fraction's
// three forms, in and out of the years 0 to 9999.
func TestAppendTimestampDigits(t *testing.T) {
	for _, c := range []struct {
		name string
		t    time.Time
	}{
		{"epoch", time.Unix(0, 0)},
		{"zero time", time.Time{}},
		{"year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year 9999 end", time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year -1", time.Date(-1, 6, 15, 12, 30, 45, 0, time.UTC)},
		{"millis", time.Date(2026, 3, 25, 10, 0, 0, 120_000_000, time.UTC)},
		{"millis 1", time.Date(2026, 3, 25, 10, 0, 0, 1_000_000, time.UTC)},
		{"micros", time.Date(2026, 3, 25, 10, 0, 0, 123_456_000, time.UTC)},
		{"micros 1", time.Date(2026, 3, 25, 10, 0, 0, 1_000, time.UTC)},
		{"nanos", time.Date(2026, 3, 25, 10, 0, 0, 123_456_789, time.UTC)},
		{"nanos 1", time.Date(2026, 3, 25, 10, 0, 0, 1, time.UTC)},
		{"other zone, day before in UTC", time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("x", 3600))},
		{"leap day", time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)},
		{"now", time.Now()},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, want := string(appendTimestamp([]byte("x"), c.t)), string(appendTimestampLayout([]byte("x"), c.t))
			if got != want {
				t.Errorf("appendTimestamp = %s, want %s", got, want)
			}
		})
	}
}

func FuzzAppendTimestamp(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1774432800), int64(123456789))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		ts := time.Unix(sec, nsec)
		if got, want := string(appendTimestamp(nil, ts)), string(appendTimestampLayout(nil, ts)); got != want {
			t.Fatalf("appendTimestamp(%d, %d) = %s, want %s", sec, nsec, got, want)
		}
	})
}

// TestJSONSizeBound checks that jsonSize bounds a message's JSON whenever its
// strings need no escapes and its year has 4 digits, so that an envelope is
// encoded in its one allocation.
func TestJSONSizeBound(t *testing.T) {
	ts := time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	for _, c := range []struct {
		name string
		m    Message
	}{
		{"largest fixed part", Message{Topic: "a.b", Payload: json.RawMessage(`{"type":"connect"}`), SourceID: "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f", Timestamp: ts, Seq: ^uint64(0), Principal: "default"}},
		{"empty strings", Message{Timestamp: ts, Seq: ^uint64(0)}},
		{"zero", Message{}},
		{"long source", Message{Topic: "t", Payload: json.RawMessage(`{}`), SourceID: strings.Repeat("s", 100), Timestamp: ts, Seq: ^uint64(0), Principal: "p"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, _ := c.m.MarshalJSON()
			if len(b) > c.m.jsonSize() {
				t.Errorf("JSON of %d bytes > jsonSize %d: %s", len(b), c.m.jsonSize(), b)
			}
			env := Envelope{Messages: []Message{c.m, c.m, c.m}, Lagged: ^uint64(0)}
			if n := testing.AllocsPerRun(10, func() { _, _ = env.MarshalJSON() }); n != 1 {
				t.Errorf("Envelope.MarshalJSON allocates %v times, want 1", n)
			}
		})
	}
}
