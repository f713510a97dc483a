package astrid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkSameAsJSON checks decodeEnvelopeFast against json.Unmarshal on b:
// where the fast path decodes, encoding/json must succeed with an equal
// Envelope. It reports whether the fast path decoded.
func checkSameAsJSON(t *testing.T, b []byte) bool {
	t.Helper()
	fast, ok := decodeEnvelopeFast(b)
	var want Envelope
	err := json.Unmarshal(b, &want)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("fast path decoded %q, which json.Unmarshal rejects: %v", b, err)
	}
	if msg := envelopeDiff(fast, &want); msg != "" {
		t.Fatalf("on %q: %s", b, msg)
	}
	return true
}

// envelopeDiff describes how got differs from want, or returns "".
func envelopeDiff(got, want *Envelope) string {
	if got.Dropped != want.Dropped || got.Lagged != want.Lagged {
		return fmt.Sprintf("dropped/lagged = %d/%d, want %d/%d", got.Dropped, got.Lagged, want.Dropped, want.Lagged)
	}
	if (got.Messages == nil) != (want.Messages == nil) || len(got.Messages) != len(want.Messages) {
		return fmt.Sprintf("messages = %#v, want %#v", got.Messages, want.Messages)
	}
	for i := range got.Messages {
		g, w := got.Messages[i], want.Messages[i]
		if g.Topic != w.Topic || g.SourceID != w.SourceID || g.Seq != w.Seq || g.Principal != w.Principal ||
			!g.Timestamp.Equal(w.Timestamp) || !samePayload(g.Payload, w.Payload) {
			return fmt.Sprintf("message %d = %#v, want %#v", i, g, w)
		}
	}
	return ""
}

// samePayload compares two raw JSON values after json.Compact.
func samePayload(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func TestDecodeEnvelopeFast(t *testing.T) {
	msg := func(fields string) string { return `{"messages":[{` + fields + `}],"dropped":0,"lagged":0}` }
	base := `"topic":"a.b","payload":{"type":"connect"},"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:00Z","seq":1`
	for _, c := range []struct {
		name, in string
		fast     bool // whether the fast path must decode it
	}{
		{"sample", sampleEnvelope, true},
		{"empty messages", `{"messages":[],"dropped":0,"lagged":0}`, true},
		{"no messages key", `{"dropped":1,"lagged":2}`, true},
		{"empty object", `{}`, true},
		{"principal absent", msg(base), true},
		{"principal present", msg(base + `,"principal":"alice"`), true},
		{"escapes in topic", msg(`"topic":"a\"b\\c\/d\b\f\n\r\t\u00e9\u4e2d\ud83d\ude00","seq":1`), true},
		{"lone surrogates", msg(`"topic":"\ud83d x \ude00 \ud83d\u0041 \ud83d\ud83d\ude00"`), true},
		{"utf8 topic", msg(`"topic":"héllo 世界 😀"`), true},
		{"invalid utf8 topic", msg("\"topic\":\"a\xffb\xc3\""), true},
		{"escaped key", msg(`"top\u0069c":"x","se\u0071":5`), true},
		{"nested payload", msg(`"payload":{"type":"custom","data":{"s":"}{][\"\\","a":[1,-2.5e+3,true,false,null,{"x":[[]]}],"e":{}}}`), true},
		{"payload string", msg(`"payload":"x\"}"`), true},
		{"payload number", msg(`"payload":-0.0E-0`), true},
		{"payload array", msg(`"payload":[ 1 , "2" , [ ] ]`), true},
		{"unknown keys", `{"x":{"messages":[1]},"messages":[{"extra":[{"topic":"no"}],"topic":"yes","zz":"\u1234"}],"y":null,"dropped":3}`, true},
		{"whitespace", " \t\r\n{ \"messages\" : [ { \"topic\" : \"t\" , \"payload\" : { \"a\" : [ 1 , 2 ] } , \"seq\" : 7 } ] , \"lagged\" : 9 } \n", true},
		{"u64 limit", `{"messages":[{"seq":18446744073709551615}],"dropped":18446744073709551615,"lagged":18446744073709551615}`, true},
		{"any key order", msg(`"seq":3,"principal":"p","timestamp":"2026-01-02T03:04:05.5+01:00","source_id":"s","payload":1,"topic":"t"`), true},
		{"fraction digits", msg(`"timestamp":"2026-01-02T03:04:05.123456789Z"`), true},
		{"many messages", `{"messages":[` + strings.Repeat(`{`+base+`},`, 20) + `{` + base + `}]}`, true},

		// Left to encoding/json (valid or not).
		{"u64 overflow", `{"dropped":18446744073709551616}`, false},
		{"negative", `{"dropped":-1}`, false},
		{"fraction", `{"dropped":1.0}`, false},
		{"exponent", `{"dropped":1e3}`, false},
		{"leading zero", `{"dropped":01}`, false},
		{"string number", `{"dropped":"1"}`, false},
		{"null dropped", `{"dropped":null}`, false},
		{"null messages", `{"messages":null}`, false},
		{"null message", `{"messages":[null]}`, false},
		{"null payload", msg(`"payload":null`), false},
		{"null topic", msg(`"topic":null`), false},
		{"case-folded key", msg(`"Topic":"x"`), false},
		{"case-folded envelope key", `{"Lagged":1}`, false},
		{"kelvin key", "{\"messages\":[{\"\u212a\":1}]}", false},
		{"duplicate key", msg(`"topic":"a","topic":"b"`), false},
		{"duplicate messages", `{"messages":[{"seq":1}],"messages":[{"topic":"x"}]}`, false},
		{"bad timestamp", msg(`"timestamp":"yesterday"`), false},
		{"timestamp number", msg(`"timestamp":0`), false},
		{"escaped timestamp", msg(`"timestamp":"\u0032026-03-25T10:00:00Z"`), false},
		{"trailing comma", `{"messages":[],}`, false},
		{"trailing data", `{} {}`, false},
		{"bad escape", msg(`"topic":"\x"`), false},
		{"control char", msg("\"topic\":\"a\nb\""), false},
		{"unterminated", `{"messages":[{"topic":"a`, false},
		{"bad literal", msg(`"payload":tru`), false},
		{"top-level null", `null`, false},
		{"top-level array", `[]`, false},
		{"empty", ``, false},
		{"deep payload", msg(`"payload":` + strings.Repeat("[", 300) + strings.Repeat("]", 300)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := checkSameAsJSON(t, []byte(c.in)); got != c.fast {
				t.Errorf("fast path decoded = %v, want %v", got, c.fast)
			}
		})
	}
}

func TestDecodeEnvelopeFastPayloadCapacity(t *testing.T) {
	b := []byte(`{"messages":[{"payload":[1]},{"payload":[2]}]}`)
	env, ok := decodeEnvelopeFast(b)
	if !ok {
		t.Fatal("fast path failed")
	}
	_ = append(env.Messages[0].Payload, 'x')
	if got := string(env.Messages[1].Payload); got != "[2]" {
		t.Errorf("append to one Payload changed the next one: %s", got)
	}
}

func TestDecodeEnvelopeFastTimestamp(t *testing.T) {
	env, ok := decodeEnvelopeFast([]byte(sampleEnvelope))
	if !ok {
		t.Fatal("fast path failed")
	}
	want := time.Date(2026, 3, 25, 10, 0, 0, 123456789, time.UTC)
	if ts := env.Messages[0].Timestamp; !ts.Equal(want) || ts.Location() != time.UTC {
		t.Errorf("timestamp = %v, want %v", ts, want)
	}
}

// TestDecodeEnvelopeFastSharedTimestamps: messages that repeat the timestamp before them (those
// of one batch do) decode to what encoding/json gives, in runs, interleaved, and after a
// timestamp of another form, which is not reused.
func TestDecodeEnvelopeFastSharedTimestamps(t *testing.T) {
	const a, b, z = "2026-03-25T10:00:00.5Z", "2026-03-25T10:00:01Z", "2026-03-25T11:00:00.5+01:00"
	for _, stamps := range [][]string{{a, a, a}, {a, b, b, a}, {z, z, a}, {a, z, a}} {
		var msgs []string
		for i, ts := range stamps {
			msgs = append(msgs, fmt.Sprintf(`{"topic":"t","payload":{"type":"custom","data":1},"signature":null,"source_id":"s","timestamp":%q,"seq":%d}`, ts, i+1))
		}
		env := `{"messages":[` + strings.Join(msgs, ",") + `],"dropped":0,"lagged":0}`
		if !checkSameAsJSON(t, []byte(env)) {
			t.Fatalf("fast path failed on %s", env)
		}
		got, _ := decodeEnvelopeFast([]byte(env))
		for i, m := range got.Messages {
			if stamps[i] != z && m.Timestamp.Location() != time.UTC {
				t.Errorf("%v: message %d's timestamp is in %v, want UTC", stamps, i, m.Timestamp.Location())
			}
		}
	}
}

// TestDecodeEnvelopeFastRepeatedStrings: a message's topic, source id and principal compared with
// the previous message's (envScanner.repeated) give what encoding/json gives, whatever the
// previous one was: the same bytes, an escaped or invalid UTF-8 form, a prefix, an extension.
func TestDecodeEnvelopeFastRepeatedStrings(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []string // each a JSON string as it appears in the input, one message each
		fast   bool
	}{
		{"same", []string{`"a.b"`, `"a.b"`, `"a.b"`}, true},
		{"different", []string{`"a.b"`, `"a.c"`, `"a.b"`}, true},
		{"prefix", []string{`"abc"`, `"ab"`, `"abc"`}, true},
		{"extension", []string{`"ab"`, `"abc"`, `"abcd"`}, true},
		{"empty", []string{`""`, `""`, `"a"`, `""`}, true},
		{"escaped then plain", []string{`"\u0061b"`, `"ab"`, `"ab"`}, true},
		{"plain then escaped", []string{`"ab"`, `"\u0061b"`, `"ab"`}, true},
		{"escaped quote then its bytes", []string{`"a\"b"`, `"a"`, `"a\"b"`}, true},
		{"escaped backslash then plain", []string{`"a\\b"`, `"a\\b"`, `"ab"`}, true},
		{"utf8", []string{`"héllo"`, `"héllo"`, `"hé"`}, true},
		{"invalid utf8", []string{"\"a\xffb\"", "\"a\xffb\"", "\"a\uFFFDb\"", "\"a\uFFFDb\""}, true},
		{"control char after a repeat", []string{`"ab"`, "\"ab\n\""}, false},
		// The same bytes as an escaped string's value are not that string, and here not JSON.
		{"escaped quote's bytes", []string{`"a\"b"`, `"a"b"`}, false},
		{"escaped newline's bytes", []string{`"a\nb"`, "\"a\nb\""}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var msgs []string
			for i, v := range c.values {
				msgs = append(msgs, fmt.Sprintf(`{"topic":%s,"payload":{"type":"custom","data":%d},"signature":null,"source_id":%s,`+
					`"timestamp":"2026-03-25T10:00:00Z","seq":%d,"principal":%s}`, v, i, v, i+1, v))
			}
			env := `{"messages":[` + strings.Join(msgs, ",") + `],"dropped":0,"lagged":0}`
			if got := checkSameAsJSON(t, []byte(env)); got != c.fast {
				t.Errorf("fast path decoded = %v, want %v: %s", got, c.fast, env)
			}
			// Cut short anywhere, in a repeated string too: still what encoding/json says.
			for n := range len(env) {
				checkSameAsJSON(t, []byte(env[:n]))
			}
			// One message an envelope: the strings are kept from one envelope to the next.
			fast := true
			for _, m := range msgs {
				fast = checkSameAsJSON(t, []byte(`{"messages":[`+m+`],"dropped":0,"lagged":0}`)) && fast
			}
			if fast != c.fast {
				t.Errorf("fast path decoded the one-message envelopes = %v, want %v", fast, c.fast)
			}
		})
	}
}

// TestDecodeEnvelopeFastSeqDigits: seq numbers around 19 and 20 digits, where uint starts
// checking for overflow, against encoding/json.
func TestDecodeEnvelopeFastSeqDigits(t *testing.T) {
	for _, seq := range []string{
		"9999999999999999999", "10000000000000000000", "18446744073709551615", "18446744073709551616",
		"18446744073709551620", "99999999999999999999", "184467440737095516150", "1234567890123456789",
	} {
		checkSameAsJSON(t, []byte(`{"messages":[{"topic":"t","seq":`+seq+`}],"dropped":`+seq+`}`))
	}
}

// hostMsg writes one message as the host does (bus.Message's JSON), with principal left out
// when empty.
func hostMsg(topic, payload, source, stamp string, seq int, principal string) string {
	m := `{"topic":"` + topic + `","payload":` + payload + `,"signature":null,"source_id":"` + source +
		`","timestamp":"` + stamp + `","seq":` + fmt.Sprint(seq)
	if principal != "" {
		m += `,"principal":"` + principal + `"`
	}
	return m + "}"
}

// TestHostMessageTemplate: a message read against the previous one's bytes (hostMessage's
// template) gives what json.Unmarshal gives, whichever of its parts differs from the message
// before it, and for every message after it.
func TestHostMessageTemplate(t *testing.T) {
	const src, stamp, custom = "6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f", "2026-03-25T10:00:00.5Z", `{"type":"custom","data":"xy"}`
	first := hostMsg("a.b", custom, src, stamp, 7, "default")
	for _, c := range []struct{ name, next string }{
		{"same", hostMsg("a.b", custom, src, stamp, 8, "default")},
		{"topic", hostMsg("a.c", custom, src, stamp, 8, "default")},
		{"escaped topic", hostMsg(`a.b`, custom, src, stamp, 8, "default")},
		{"payload", hostMsg("a.b", `{"type":"custom","data":{"k":[1,2]}}`, src, stamp, 8, "default")},
		{"other payload", hostMsg("a.b", `{"type":"text","text":"hi"}`, src, stamp, 8, "default")},
		{"null payload", hostMsg("a.b", `null`, src, stamp, 8, "default")},
		{"source", hostMsg("a.b", custom, "00000000-0000-0000-0000-000000000000", stamp, 8, "default")},
		{"timestamp", hostMsg("a.b", custom, src, "2026-03-25T10:00:01.5Z", 8, "default")},
		{"seq length", hostMsg("a.b", custom, src, stamp, 123456789, "default")},
		{"seq leading zero", strings.Replace(hostMsg("a.b", custom, src, stamp, 8, "default"), `"seq":8`, `"seq":08`, 1)},
		{"seq fraction", strings.Replace(hostMsg("a.b", custom, src, stamp, 8, "default"), `"seq":8`, `"seq":8.5`, 1)},
		{"no principal", hostMsg("a.b", custom, src, stamp, 8, "")},
		{"principal", hostMsg("a.b", custom, src, stamp, 8, "other")},
		{"extra key", strings.Replace(hostMsg("a.b", custom, src, stamp, 8, "default"), `}`, `,"x":1}`, 1)},
		{"whitespace", strings.Replace(hostMsg("a.b", custom, src, stamp, 8, "default"), `,"seq"`, ` ,"seq"`, 1)},
		{"truncated", hostMsg("a.b", custom, src, stamp, 8, "default")[:40]},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, b := range []string{
				`{"messages":[` + first + `,` + c.next + `]}`,
				`{"messages":[` + first + `,` + c.next + `,` + first + `,` + c.next + `],"lagged":3}`,
				`{"messages":[` + first + `,` + first + `,` + c.next + `,` + c.next + `]}`,
			} {
				var want Envelope
				if err := json.Unmarshal([]byte(b), &want); err != nil {
					if env, ok := decodeEnvelopeFast([]byte(b)); ok {
						t.Fatalf("fast path decoded %q (%+v), which json.Unmarshal rejects: %v", b, env, err)
					}
					continue
				}
				if !checkSameAsJSON(t, []byte(b)) && c.name != "null payload" && c.name != "extra key" && c.name != "whitespace" {
					t.Fatalf("fast path gave up on %q", b)
				}
			}
			// One message an envelope: the first is matched against the template kept from
			// the envelope before (envCache.tmpl).
			for _, m := range []string{first, c.next, first, c.next, c.next} {
				checkSameAsJSON(t, []byte(`{"messages":[`+m+`],"dropped":0,"lagged":0}`))
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"messages":[{"topic":"a\"b","source_id":"s","timestamp":"2026-03-25T10:00:00Z"},` +
		`{"topic":"a","source_id":"s","timestamp":"2026-03-25T10:00:00Z","seq":1}]}`))
	f.Add([]byte(sampleEnvelope))
	f.Add(benchEnvelope(4))     // distinct timestamps: the template with a timestamp read
	f.Add(benchHostEnvelope(3)) // one shared timestamp
	f.Add([]byte(`{"messages":[],"dropped":0,"lagged":0}`))
	f.Add([]byte(`{"messages":[{"topic":"a\u00e9\ud83d\ude00","payload":{"s":"}\"{","a":[1,2.5e3,null]},"seq":18446744073709551615}]}`))
	f.Add([]byte(`{"x":[{"y":"z"}],"messages":[{"Topic":"x","extra":true,"timestamp":"2026-01-02T03:04:05.5+01:00"}]}`))
	// Host-shaped messages, read against the one before (hostMessage's template).
	m1 := hostMsg("a.b", `{"type":"custom","data":"xy"}`, "s-1", "2026-03-25T10:00:00.5Z", 7, "default")
	m2 := hostMsg("a.b", `{"type":"custom","data":[1]}`, "s-1", "2026-03-25T10:00:00.5Z", 18, "default")
	m3 := hostMsg("a.b", `{"type":"custom","data":"xy"}`, "s-1", "2026-03-25T10:00:00.5Z", 9, "")
	f.Add([]byte(`{"messages":[` + m1 + `,` + m2 + `,` + m3 + `,` + m1 + `]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameAsJSON(t, b)
	})
}

// benchEnvelope returns an envelope of n messages with 256-byte payloads.
func benchEnvelope(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"messages":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		prefix := `{"type":"custom","data":{"n":` + fmt.Sprint(i) + `,"text":"`
		suffix := `"}}`
		payload := prefix + strings.Repeat("x", 256-len(prefix)-len(suffix)) + suffix
		fmt.Fprintf(&buf, `{"topic":"bench.v1.event","payload":%s,"signature":null,`+
			`"source_id":"6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f","timestamp":"2026-03-25T10:00:00.%09dZ","seq":%d,"principal":"default"}`,
			payload, i, i+1)
	}
	buf.WriteString(`],"dropped":0,"lagged":0}`)
	return buf.Bytes()
}

// benchHostEnvelope returns an envelope of n messages as BenchmarkBusThroughput's subscriber
// gets them from the host: one publisher's 256-byte JSON strings, its batches of 64 sharing a
// timestamp.
func benchHostEnvelope(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"messages":[`)
	payload := `{"type":"custom","data":"` + strings.Repeat("x", 254) + `"}`
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"topic":"test.v1.tp","payload":%s,"signature":null,`+
			`"source_id":"6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f","timestamp":"2026-03-25T10:00:00.%09dZ","seq":%d}`,
			payload, i/64*1000, 100000+i)
	}
	buf.WriteString(`],"dropped":0,"lagged":0}`)
	return buf.Bytes()
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	const n = 1000
	data := benchEnvelope(n)
	b.Run("host", func(b *testing.B) {
		host := benchHostEnvelope(n)
		b.SetBytes(int64(len(host)))
		b.ReportAllocs()
		for b.Loop() {
			env, ok := decodeEnvelopeFast(host)
			if !ok || len(env.Messages) != n {
				b.Fatal("fast path failed")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
	})
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			env, ok := decodeEnvelopeFast(data)
			if !ok || len(env.Messages) != n {
				b.Fatal("fast path failed")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var env Envelope
			if err := json.Unmarshal(data, &env); err != nil || len(env.Messages) != n {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
	})
}

// checkTimestampSameAsJSON checks parseHostTimestamp against time.Time's
// UnmarshalJSON on s: where the fast path parses, UnmarshalJSON must give
// the identical time.Time (same instant, same location). It reports whether
// the fast path parsed.
func checkTimestampSameAsJSON(t *testing.T, s string) bool {
	t.Helper()
	got, ok := parseHostTimestamp([]byte(s))
	if !ok {
		return false
	}
	var want time.Time
	if err := want.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
		t.Fatalf("fast path parsed %q, which UnmarshalJSON rejects: %v", s, err)
	}
	if got != want {
		t.Fatalf("parseHostTimestamp(%q) = %#v, UnmarshalJSON gives %#v", s, got, want)
	}
	return true
}

func TestParseHostTimestamp(t *testing.T) {
	for _, c := range []struct {
		in   string
		fast bool
	}{
		{"2026-03-25T10:00:00Z", true},
		{"2026-03-25T10:00:00.5Z", true},
		{"2026-03-25T10:00:00.123Z", true},
		{"2026-03-25T10:00:00.123456Z", true},
		{"2026-03-25T10:00:00.123456789Z", true},
		{"0000-01-01T00:00:00Z", true},
		{"9999-12-31T23:59:59.999999999Z", true},
		{"2024-02-29T00:00:00Z", true},
		{"2000-02-29T00:00:00Z", true},
		{"1900-02-29T00:00:00Z", false},
		{"2026-02-29T00:00:00Z", false},
		{"2026-04-31T00:00:00Z", false},
		{"2026-13-01T00:00:00Z", false},
		{"2026-00-01T00:00:00Z", false},
		{"2026-01-00T00:00:00Z", false},
		{"2026-01-01T24:00:00Z", false},
		{"2026-01-01T00:60:00Z", false},
		{"2026-01-01T00:00:60Z", false},
		{"2026-01-01T00:00:00.Z", false},
		{"2026-01-01T00:00:00.1234567891Z", false},
		{"2026-01-01T00:00:00+00:00", false},
		{"2026-01-01T00:00:00.5+01:00", false},
		{"2026-01-01t00:00:00Z", false},
		{"2026-01-01T00:00:00z", false},
		{"2026-1-01T00:00:00Z", false},
		{"+026-01-01T00:00:00Z", false},
		{"2026-01-01T00:00:0xZ", false},
		{"", false},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := checkTimestampSameAsJSON(t, c.in); got != c.fast {
				t.Errorf("fast path parsed = %v, want %v", got, c.fast)
			}
		})
	}
}

// TestParseHostTimestampDays: every day of the years around the calendar's edges (year 0, the
// century rules, the Unix epoch, year 9999) parses, at midnight and at the day's last
// nanosecond, to exactly the time.Time of time.Date (==: the same instant and location).
func TestParseHostTimestampDays(t *testing.T) {
	for _, span := range [][2]int{{0, 4}, {99, 101}, {399, 401}, {1599, 1601}, {1899, 1901}, {1968, 2101}, {2399, 2401}, {9996, 9999}} {
		for d := time.Date(span[0], 1, 1, 0, 0, 0, 0, time.UTC); d.Year() <= span[1]; d = d.AddDate(0, 0, 1) {
			for _, c := range []struct {
				t      time.Time
				layout string
			}{
				{d, "2006-01-02T15:04:05Z"},
				{d.Add(24*time.Hour - 1), "2006-01-02T15:04:05.000000000Z"},
				{d.Add(12*time.Hour + 34*time.Minute + 56*time.Second + 789*time.Millisecond), "2006-01-02T15:04:05.000Z"},
			} {
				s := c.t.Format(c.layout)
				got, ok := parseHostTimestamp([]byte(s))
				if !ok || got != c.t {
					t.Fatalf("parseHostTimestamp(%q) = %#v, %v; want %#v", s, got, ok, c.t)
				}
			}
		}
	}
}

func FuzzParseHostTimestamp(f *testing.F) {
	f.Add("2026-03-25T10:00:00.123456789Z")
	f.Add("2024-02-29T23:59:59Z")
	f.Add("2026-01-01T00:00:00.5+01:00")
	f.Fuzz(func(t *testing.T, s string) {
		checkTimestampSameAsJSON(t, s)
	})
}

// dataViaJSON is what Message.Data gives without its fast path.
func dataViaJSON(p []byte) (json.RawMessage, bool) {
	var head struct {
		Type *string         `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(p, &head) != nil || head.Type == nil || *head.Type != "custom" || head.Data == nil {
		return nil, false
	}
	return head.Data, true
}

func TestCustomData(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		fast           bool
	}{
		{"object", `{"type":"custom","data":{"n":3}}`, `{"n":3}`, true},
		{"string", `{"type":"custom","data":"he said \"}\""}`, `"he said \"}\""`, true},
		{"null", `{"type":"custom","data":null}`, `null`, true},
		{"nested", `{"type":"custom","data":[1,{"a":[true,false,null,-2.5e3]}]}`, `[1,{"a":[true,false,null,-2.5e3]}]`, true},
		{"space inside", `{"type":"custom","data":{ "n" : 3 }}`, `{ "n" : 3 }`, true},
		{"space after value", `{"type":"custom","data":1 }`, ``, false},
		{"second key", `{"type":"custom","data":1,"type":"x"}`, ``, false},
		{"other type", `{"type":"customer","data":1}`, ``, false},
		{"no data", `{"type":"custom"}`, ``, false},
		{"invalid value", `{"type":"custom","data":tru}`, ``, false},
		{"two values", `{"type":"custom","data":1 2}`, ``, false},
		{"truncated", `{"type":"custom","data":`, ``, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := customData([]byte(c.in))
			if ok != c.fast {
				t.Fatalf("customData(%s) ok = %v, want %v", c.in, ok, c.fast)
			}
			if ok && string(got) != c.want {
				t.Errorf("customData(%s) = %s, want %s", c.in, got, c.want)
			}
			if want := (Message{Payload: json.RawMessage(c.in)}).Data(); ok && string(want) != string(got) {
				t.Errorf("Data = %s, customData %s", want, got)
			}
		})
	}
}

func FuzzCustomData(f *testing.F) {
	f.Add([]byte(`{"type":"custom","data":{"n":3}}`))
	f.Add([]byte(`{"type":"custom","data":"x\"}"}`))
	f.Add([]byte(`{"type":"custom","data":[1,2.5e3,null]}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		got, ok := customData(p)
		if !ok {
			return
		}
		want, wok := dataViaJSON(p)
		if !wok {
			t.Fatalf("customData(%q) = %q, but encoding/json finds no custom data", p, got)
		}
		if string(got) != string(want) {
			t.Fatalf("customData(%q) = %q, encoding/json %q", p, got, want)
		}
	})
}

func BenchmarkMessageData(b *testing.B) {
	m := Message{Payload: json.RawMessage(`{"type":"custom","data":{"ping":1}}`)}
	b.ReportAllocs()
	for b.Loop() {
		if len(m.Data()) == 0 {
			b.Fatal("no data")
		}
	}
}

// FuzzPlainRun checks the word-at-a-time scan: every byte it skips is a
// plainStringByte, and it stops only at a word that holds another byte or
// at the last partial word.
func FuzzPlainRun(f *testing.F) {
	f.Add([]byte(`abcdefghijklmnop"qrs`), 0)
	f.Add([]byte("abcdefgh\\ijklmnop\x1fq\xff\x80"), 1)
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		if i < 0 || i > len(b) {
			return
		}
		r := plainRun(b, i)
		for j := i; j < r; j++ {
			if !plainStringByte[b[j]] {
				t.Fatalf("plainRun(%q, %d) = %d skips %q at %d", b, i, r, b[j], j)
			}
		}
		if r+8 <= len(b) {
			stop := false
			for _, c := range b[r : r+8] {
				stop = stop || !plainStringByte[c]
			}
			if !stop {
				t.Fatalf("plainRun(%q, %d) = %d stops at a plain word", b, i, r)
			}
		}
	})
}

// TestEqualAt checks the word-at-a-time comparison at every length up to three words and every
// position of a difference: the whole words, the word that overlaps them at the end, the bytes
// of a short one.
func TestEqualAt(t *testing.T) {
	for n := range 25 {
		a := []byte(strings.Repeat("abcdefghij", 3)[:n])
		for diff := -1; diff < n; diff++ {
			b := bytes.Clone(a)
			if diff >= 0 {
				b[diff] ^= 0x20
			}
			if got := equalBytes(a, b); got != (diff < 0) {
				t.Fatalf("equalBytes(%q, %q) = %v", a, b, got)
			}
		}
	}
}

// FuzzEqualAt checks equalAt against bytes.Equal.
func FuzzEqualAt(f *testing.F) {
	f.Add([]byte("abcdefghijk"), []byte("abcdefghijK"))
	f.Add([]byte(`,"seq":`), []byte(`,"seq":`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		n := min(len(a), len(b))
		if got, want := equalBytes(a[:n], b[:n]), bytes.Equal(a[:n], b[:n]); got != want {
			t.Fatalf("equalBytes(%q, %q) = %v, want %v", a[:n], b[:n], got, want)
		}
	})
}

// TestHostMessage checks the literal match of the host's message shape: it
// takes the host's own messages, gives what the general walk gives, and
// leaves every other shape to it with the scanner where it was.
func TestHostMessage(t *testing.T) {
	const host = `{"topic":"foo.bar","payload":{"type":"custom","data":{"x":"}"}},"signature":null,` +
		`"source_id":"6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f","timestamp":"2026-03-25T10:00:00.123456789Z","seq":42`
	for _, c := range []struct {
		name, in string
		fast     bool
	}{
		{"host, principal", host + `,"principal":"default"}`, true},
		{"host, no principal", host + `}`, true},
		{"host, other payload", `{"topic":"a","payload":{"type":"connect"},"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, true},
		{"host, escaped topic", `{"topic":"a\"b","payload":{"type":"custom","data":1},"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, true},
		{"host, timestamp with offset", `{"topic":"a","payload":{"type":"custom","data":1},"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01+02:00","seq":1}`, true},
		{"whitespace", `{ "topic":"a","payload":{},"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, false},
		{"reordered", `{"payload":{},"topic":"a","signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, false},
		{"signature set", `{"topic":"a","payload":{},"signature":"x","source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, false},
		{"duplicate principal", host + `,"principal":"a","principal":"b"}`, false},
		{"extra key", host + `,"x":1}`, false},
		{"null payload", `{"topic":"a","payload":null,"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, false},
		{"bad timestamp", `{"topic":"a","payload":{},"signature":null,"source_id":"s","timestamp":"yesterday","seq":1}`, false},
		{"custom with trailing space", `{"topic":"a","payload":{"type":"custom","data":1 },"signature":null,"source_id":"s","timestamp":"2026-03-25T10:00:01Z","seq":1}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := envScanner{b: []byte(c.in), cache: new(envCache)}
			var m Message
			if got := s.hostMessage(&m); got != c.fast {
				t.Fatalf("hostMessage = %v, want %v", got, c.fast)
			}
			if !c.fast {
				if s.i != 0 || m.Topic != "" || m.Payload != nil || m.SourceID != "" || !m.Timestamp.IsZero() || m.Seq != 0 || m.Principal != "" {
					t.Fatalf("hostMessage gave up at %d with %#v, want the scanner at 0 and an empty message", s.i, m)
				}
			} else if s.i != len(c.in) {
				t.Fatalf("hostMessage stopped at %d of %d", s.i, len(c.in))
			}
			checkSameAsJSON(t, []byte(`{"messages":[`+c.in+`],"dropped":0,"lagged":0}`))
		})
	}
}

// TestEqualBytes checks equalBytes and equalString against bytes.Equal for every length up to
// three words and a tail, with one byte changed at every position, and for different lengths.
func TestEqualBytes(t *testing.T) {
	for n := 0; n <= 27; n++ {
		a := make([]byte, n)
		for i := range a {
			a[i] = byte('a' + i)
		}
		if !equalBytes(a, slices.Clone(a)) || !equalString(a, string(a)) {
			t.Fatalf("equalBytes(%q, a copy) = false", a)
		}
		longer := append(slices.Clone(a), 'x')
		if equalBytes(a, longer) || equalBytes(longer, a) || equalString(a, string(longer)) || equalString(longer, string(a)) {
			t.Fatalf("equalBytes of %d and %d bytes = true", n, n+1)
		}
		for i := range a {
			b := slices.Clone(a)
			b[i] ^= 0x80
			want := bytes.Equal(a, b)
			if equalBytes(a, b) != want || equalString(a, string(b)) != want {
				t.Fatalf("equalBytes(%q, %q) != %v", a, b, want)
			}
		}
	}
}
