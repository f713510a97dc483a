package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Message is one IPC message on the bus: upstream's IpcMessage. Its JSON
// (MarshalJSON) is exactly upstream's serde form, which is what guests get
// in poll and recv envelopes.
type Message struct {
	// Topic is the topic published to.
	Topic string
	// Payload is the tagged IpcPayload JSON, e.g.
	// {"type":"custom","data":{"x":1}}, as PayloadFromGuest or CustomPayload
	// make it. It must be valid JSON; it is written into envelopes verbatim
	// and its length is the message's size for queue and envelope budgets.
	Payload json.RawMessage
	// SourceID is the UUID of the publishing capsule instance, or the nil
	// UUID (NilSourceID) for the host's own events; "" is written as the nil
	// UUID.
	SourceID string
	// Timestamp is when the message was published; Publish sets it if zero.
	Timestamp time.Time
	// Seq is the bus's global sequence number, set by Publish (from 1).
	Seq uint64
	// Principal is the principal the message acts for; "" means none (a
	// system event) and is omitted from the JSON.
	Principal string
}

// NilSourceID is the source_id of messages the host publishes itself.
const NilSourceID = "00000000-0000-0000-0000-000000000000"

// MarshalJSON returns upstream's IpcMessage JSON:
//
//	{"topic":..,"payload":..,"signature":null,"source_id":..,"timestamp":..,"seq":..,"principal":..}
//
// with "principal" omitted when empty. The timestamp is RFC 3339 in UTC with
// a "Z", formatted as chrono's serde does (SecondsFormat::AutoSi): no
// fraction, or 3, 6 or 9 digits, as few as represent it exactly.
func (m Message) MarshalJSON() ([]byte, error) {
	return m.appendJSON(make([]byte, 0, m.jsonSize())), nil
}

// jsonSize is the length of m's JSON (appendJSON) when its strings need no
// escapes and its timestamp's year has 4 digits, or more: what to allocate
// so that encoding m does not grow the buffer. The fixed part is 157 bytes
// (the keys, punctuation, "null" signature, a 30-byte timestamp, a 20-digit
// seq); 160 leaves room for an envelope's separators.
func (m *Message) jsonSize() int {
	return 160 + len(m.Topic) + max(len(m.Payload), 4) + max(len(m.SourceID), len(NilSourceID)) + len(m.Principal)
}

// appendJSON appends m's JSON to b.
func (m *Message) appendJSON(b []byte) []byte {
	return m.appendJSONStamp(b, nil)
}

// lastStamp is what an envelope's encoding last wrote, and where: the timestamp (a batch's
// messages share one, Bus.PublishBatch) and the three strings (a publisher's messages share its
// source id and principal, and usually a topic), whose text is then copied from the buffer rather
// than formatted or escaped again.
type lastStamp struct {
	t                        time.Time
	start, end               int // the timestamp's bounds in the buffer being appended to; end 0 when none yet
	topic, source, principal lastString
}

// lastString is where an envelope's encoding last wrote a string's JSON text.
type lastString struct {
	s          string
	start, end int // the quoted text's bounds in the buffer; end 0 when none yet
}

// append appends s's JSON text to b: a copy of the text last wrote (at its bounds in b) when s
// is the same string, else appendString's; l then records it.
func (l *lastString) append(b []byte, s string) []byte {
	start := len(b)
	if l.end > 0 && l.s == s {
		b = append(b, b[l.start:l.end]...)
	} else {
		b = appendString(b, s)
		l.s = s
	}
	l.start, l.end = start, len(b)
	return b
}

// appendJSONStamp is appendJSON that writes the timestamp and the strings by copying last's text
// when they are the same (last may be nil), and records where it wrote them in last.
func (m *Message) appendJSONStamp(b []byte, last *lastStamp) []byte {
	var topic, source, principal lastString // used only when last is nil: nothing to copy
	if last != nil {
		topic, source, principal = last.topic, last.source, last.principal
	}
	b = append(b, `{"topic":`...)
	b = topic.append(b, m.Topic)
	b = append(b, `,"payload":`...)
	if len(m.Payload) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Payload...)
	}
	b = append(b, `,"signature":null,"source_id":`...)
	src := m.SourceID
	if src == "" {
		src = NilSourceID
	}
	b = source.append(b, src)
	b = append(b, `,"timestamp":"`...)
	switch {
	case last == nil:
		b = appendTimestamp(b, m.Timestamp)
	case last.end > 0 && last.t.Equal(m.Timestamp):
		start := len(b)
		b = append(b, b[last.start:last.end]...)
		last.start, last.end = start, len(b)
	default:
		start := len(b)
		b = appendTimestamp(b, m.Timestamp)
		last.t, last.start, last.end = m.Timestamp, start, len(b)
	}
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	if m.Principal != "" {
		b = append(b, `,"principal":`...)
		b = principal.append(b, m.Principal)
	}
	if last != nil {
		last.topic, last.source, last.principal = topic, source, principal
	}
	return append(b, '}')
}

// AppendTimestamp appends t as messages' JSON shows it: RFC 3339 in UTC with
// a "Z", as few fraction digits (0, 3, 6 or 9) as represent it exactly
// (chrono's SecondsFormat::AutoSi).
func AppendTimestamp(b []byte, t time.Time) []byte { return appendTimestamp(b, t) }

// appendTimestamp appends t in UTC as chrono's AutoSi RFC 3339 form. Years
// 0 to 9999 are written digit by digit (every envelope carries one timestamp
// a message, and time.AppendFormat costs several times more); others as
// time.AppendFormat writes them (appendTimestampLayout).
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return appendTimestampLayout(b, t)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		b = appendDigits(append(b, '.'), ns/1_000_000, 3)
	case ns%1_000 == 0:
		b = appendDigits(append(b, '.'), ns/1_000, 6)
	default:
		b = appendDigits(append(b, '.'), ns, 9)
	}
	return append(b, 'Z')
}

// appendTimestampLayout is appendTimestamp with time.AppendFormat, for any
// year.
func appendTimestampLayout(b []byte, t time.Time) []byte {
	t = t.UTC()
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		b = t.AppendFormat(b, ".000")
	case ns%1_000 == 0:
		b = t.AppendFormat(b, ".000000")
	default:
		b = t.AppendFormat(b, ".000000000")
	}
	return append(b, 'Z')
}

// appendDigits appends the non-negative v in exactly width decimal digits
// (v < 10^width), with leading zeros.
func appendDigits(b []byte, v, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

// UnmarshalJSON reads upstream's IpcMessage JSON. topic, payload (a JSON
// object), source_id (a UUID, stored in canonical form) and timestamp (RFC
// 3339) are required, as upstream 0.5 requires them; seq defaults to 0,
// principal to none; signature is ignored. Keys are case-sensitive and
// unknown keys are ignored, as serde does.
func (m *Message) UnmarshalJSON(data []byte) error {
	members, err := objectMembers(data)
	if err != nil {
		return fmt.Errorf("IpcMessage: %w", err)
	}
	var out Message
	var have struct{ topic, payload, source, timestamp bool }
	for _, mb := range members {
		switch mb.key {
		case "topic":
			if err := json.Unmarshal(mb.value, &out.Topic); err != nil {
				return fmt.Errorf("IpcMessage: topic: %w", err)
			}
			have.topic = true
		case "payload":
			if !isObject(mb.value) {
				return errors.New("IpcMessage: payload is not a JSON object")
			}
			out.Payload = compact(mb.value)
			have.payload = true
		case "source_id":
			var s string
			if err := json.Unmarshal(mb.value, &s); err != nil {
				return fmt.Errorf("IpcMessage: source_id: %w", err)
			}
			id, err := uuid.Parse(s)
			if err != nil {
				return fmt.Errorf("IpcMessage: source_id: %w", err)
			}
			out.SourceID = id.String()
			have.source = true
		case "timestamp":
			var s string
			if err := json.Unmarshal(mb.value, &s); err != nil {
				return fmt.Errorf("IpcMessage: timestamp: %w", err)
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return fmt.Errorf("IpcMessage: timestamp: %w", err)
			}
			out.Timestamp = t.UTC()
			have.timestamp = true
		case "seq":
			if err := json.Unmarshal(mb.value, &out.Seq); err != nil {
				return fmt.Errorf("IpcMessage: seq: %w", err)
			}
		case "principal":
			var p *string
			if err := json.Unmarshal(mb.value, &p); err != nil {
				return fmt.Errorf("IpcMessage: principal: %w", err)
			}
			out.Principal = ""
			if p != nil {
				out.Principal = *p
			}
		}
	}
	for _, f := range []struct {
		ok   bool
		name string
	}{{have.topic, "topic"}, {have.payload, "payload"}, {have.source, "source_id"}, {have.timestamp, "timestamp"}} {
		if !f.ok {
			return fmt.Errorf("IpcMessage: missing field `%s`", f.name)
		}
	}
	*m = out
	return nil
}

// MarshalJSON returns upstream's envelope JSON,
// {"messages":[...],"dropped":0,"lagged":n}; messages is [] when there are
// none, never null. The host should call it directly rather than through
// json.Marshal, which would scan the (up to 10 MiB) result again to validate
// and re-escape it.
func (e Envelope) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(nil), nil
}

// AppendJSON appends the envelope's JSON (MarshalJSON's) to b, growing b at
// most once: a caller that encodes envelope after envelope can reuse one
// buffer.
func (e Envelope) AppendJSON(b []byte) []byte {
	n := 48
	for i := range e.Messages {
		n += e.Messages[i].jsonSize()
	}
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	b = append(b, `{"messages":[`...)
	var last lastStamp
	for i := range e.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.Messages[i].appendJSONStamp(b, &last)
	}
	b = append(b, `],"dropped":`...)
	b = strconv.AppendUint(b, e.Dropped, 10)
	b = append(b, `,"lagged":`...)
	b = strconv.AppendUint(b, e.Lagged, 10)
	return append(b, '}')
}

// UnmarshalJSON reads the envelope JSON of MarshalJSON.
func (e *Envelope) UnmarshalJSON(data []byte) error {
	var aux struct {
		Messages []Message `json:"messages"`
		Dropped  uint64    `json:"dropped"`
		Lagged   uint64    `json:"lagged"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*e = Envelope{Messages: aux.Messages, Dropped: aux.Dropped, Lagged: aux.Lagged}
	return nil
}

// appendString appends s as a JSON string. Unlike encoding/json it does not
// escape <, > and & (nor U+2028/U+2029), as serde_json does not; invalid
// UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
