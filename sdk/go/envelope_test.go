package astrid

import (
	"bytes"
	"encoding/json"
	"fmt"
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

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(sampleEnvelope))
	f.Add([]byte(`{"messages":[],"dropped":0,"lagged":0}`))
	f.Add([]byte(`{"messages":[{"topic":"a\u00e9\ud83d\ude00","payload":{"s":"}\"{","a":[1,2.5e3,null]},"seq":18446744073709551615}]}`))
	f.Add([]byte(`{"x":[{"y":"z"}],"messages":[{"Topic":"x","extra":true,"timestamp":"2026-01-02T03:04:05.5+01:00"}]}`))
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

func BenchmarkDecodeEnvelope(b *testing.B) {
	const n = 1000
	data := benchEnvelope(n)
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
