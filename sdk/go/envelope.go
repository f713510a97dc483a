package astrid

import (
	"encoding/json"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// This file holds a hand-rolled decoder for the host's IPC envelope, the
// JSON of an Envelope. Under GOOS=wasip1, reflection-based encoding/json
// costs about 15 µs per small message, which caps what a capsule can
// receive; this decoder reads exactly the envelope's shape with a byte
// scanner instead.
//
// It is a fast path only: it accepts a subset of what json.Unmarshal
// accepts, and for it gives the same result. Whenever it meets anything it
// does not expect (a syntax error, a wrong type, null where a value is
// expected, a duplicate key, a key that encoding/json would match
// case-insensitively, a number out of range, invalid UTF-8 in a decoded
// string, deep nesting) it gives up, and decodeEnvelope falls back to
// json.Unmarshal, which decides and reports the error if there is one.

// maxSkipDepth bounds the nesting of the values that the fast path skips or
// keeps raw; deeper values go through encoding/json.
const maxSkipDepth = 256

// envScanner reads the JSON of an envelope from b, at offset i.
type envScanner struct {
	b []byte
	i int

	// What is kept from one envelope to the next (lastCache): a subscriber's
	// envelopes usually come from the same publishers.
	cache *envCache
	// The previous timestamp's text in the host's form and its time: the
	// messages of one batch share their timestamp, whose parse (and
	// time.Date) costs more in wasm than the comparison.
	stampText []byte
	stamp     time.Time

	tmpl msgTemplate // see hostMessage
	// fresh: tmpl is a message of this envelope (views of b), to keep for the next
	// (envCache.tmpl) at the end; otherwise it is the kept one, or none.
	fresh bool

	// first is where the envelope's first message goes: allocated with the
	// Envelope, as most envelopes a busy round trip reads hold one message.
	first *[1]Message
}

// envCache is what an envScanner reuses from the envelopes before.
type envCache struct {
	// The previous strings decoded, reused when the next message repeats
	// them (a topic, a publisher, a principal usually do) to save an
	// allocation and, when they were plain, the scan.
	topic, source, principal prevString
	// The last message hostMessage read in full, for the next envelope's
	// (see hostMessage).
	tmpl keptTemplate
}

// lastCache holds the envCache of the last envelope decoded, for the next one. A decode takes it
// (Swap), so that two decodes at once (goroutines of a capsule) never share one, and puts it back
// at its end; strings over maxKeptString bytes are not kept.
var lastCache atomic.Pointer[envCache]

// maxKeptString is the longest string lastCache keeps from one envelope to the next: a topic's
// longest (topics are at most 256 bytes); source ids and principals are shorter.
const maxKeptString = 256

// envelopeWithOne is an Envelope and room for its first message, allocated together.
type envelopeWithOne struct {
	env   Envelope
	first [1]Message
}

// decodeEnvelopeFast decodes the envelope in b, or returns false if
// json.Unmarshal must decide. The Payloads of the messages share memory with
// b.
func decodeEnvelopeFast(b []byte) (*Envelope, bool) {
	cache := lastCache.Swap(nil)
	if cache == nil {
		cache = new(envCache)
	}
	e := new(envelopeWithOne)
	s := envScanner{b: b, cache: cache, first: &e.first, tmpl: cache.tmpl.msgTemplate}
	ok := s.hostEnvelope(&e.env)
	if ok {
		s.ws()
	} else {
		s.i, s.first, e.env = 0, &e.first, Envelope{}
		s.ws()
		ok = s.envelope(&e.env)
		s.ws()
	}
	s.keepTemplate()
	for _, p := range []*prevString{&cache.topic, &cache.source, &cache.principal} {
		if len(p.s) > maxKeptString {
			*p = prevString{}
		}
	}
	lastCache.Store(cache)
	if !ok || s.i != len(s.b) {
		return nil, false
	}
	return &e.env, true
}

// hostEnvelope reads an envelope written exactly as the host writes them
// ({"messages":[…],"dropped":N,"lagged":N}, no whitespace), with literal
// matches of its keys instead of envelope's general object walk. It gives
// what envelope gives, or reports false, and decodeEnvelopeFast starts again
// with envelope.
func (s *envScanner) hostEnvelope(env *Envelope) bool {
	if !s.literal(`{"messages":`) || !s.messages(env) {
		return false
	}
	if s.literal(`,"dropped":0,"lagged":0}`) { // the usual end, in one comparison
		return true
	}
	return s.literal(`,"dropped":`) && s.uint(&env.Dropped) && s.literal(`,"lagged":`) && s.uint(&env.Lagged) && s.literal("}")
}

// ws skips JSON whitespace.
func (s *envScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end of the input.
func (s *envScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// next reports whether, after whitespace, the next byte is c, and consumes
// it if so.
func (s *envScanner) next(c byte) bool {
	s.ws()
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// object reads a JSON object, at its '{', calling member for each member
// with the key's bytes (unescaped) and the scanner at the value (after
// whitespace); member must consume the value.
func (s *envScanner) object(member func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		s.ws()
		key, ok := s.key()
		if !ok || !s.next(':') {
			return false
		}
		s.ws()
		if !member(key) {
			return false
		}
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}

// key reads an object key, a JSON string, and returns its content decoded.
// Like a key matched case-insensitively, a key with invalid UTF-8 makes the
// fast path give up (through the caller's check of unknown keys).
func (s *envScanner) key() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start, end, escaped, ok := s.str()
	if !ok {
		return nil, false
	}
	if !escaped {
		return s.b[start:end], true
	}
	return unquote(s.b[start:end]), true
}

// envelope reads the envelope object.
func (s *envScanner) envelope(env *Envelope) bool {
	var seen uint8
	return s.object(func(key []byte) bool {
		var bit uint8
		switch string(key) {
		case "messages":
			bit = 1
		case "dropped":
			bit = 2
		case "lagged":
			bit = 4
		default:
			return s.unknown(key, "messages", "dropped", "lagged")
		}
		if seen&bit != 0 {
			return false // Duplicate: leave encoding/json's merging to it.
		}
		seen |= bit
		switch bit {
		case 1:
			return s.messages(env)
		case 2:
			return s.uint(&env.Dropped)
		default:
			return s.uint(&env.Lagged)
		}
	})
}

// unknown skips the value of a key that is not one of the fields of the
// struct being decoded, named fields, or returns false if encoding/json
// might match it to a field anyway: it matches keys case-insensitively,
// with Unicode folding.
func (s *envScanner) unknown(key []byte, fields ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, f := range fields {
		if asciiEqualFold(key, f) {
			return false
		}
	}
	return s.skip(0)
}

// asciiEqualFold reports whether the ASCII key equals f, ignoring case.
func asciiEqualFold(key []byte, f string) bool {
	if len(key) != len(f) {
		return false
	}
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := f[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// messages reads the array of messages.
func (s *envScanner) messages(env *Envelope) bool {
	if !s.next('[') {
		return false
	}
	var msgs []Message
	if s.first != nil {
		msgs, s.first = s.first[:0], nil
	}
	if !s.next(']') {
		for {
			s.ws()
			start := s.i
			msgs = append(msgs, Message{})
			if m := &msgs[len(msgs)-1]; !s.hostMessage(m) && !s.message(m) {
				return false
			}
			if len(msgs) == 1 && s.peek() != ']' {
				// Size the slice once, by the first message's length (the messages of an
				// envelope are usually alike), rather than doubling it up to hundreds of
				// messages: each doubling allocates, clears and copies. An envelope of one
				// message (its ']' next) keeps the room allocated with it, without the
				// estimate's division.
				if est := (len(s.b)-s.i)/(s.i-start+1) + 1; est > cap(msgs) {
					msgs = slices.Grow(msgs, est+est/8)
				}
			}
			if s.next(',') {
				continue
			}
			if !s.next(']') {
				return false
			}
			break
		}
	}
	env.Messages = msgs
	return true
}

// message reads one message object.
func (s *envScanner) message(m *Message) bool {
	var seen uint8
	return s.object(func(key []byte) bool {
		var bit uint8
		switch string(key) {
		case "topic":
			bit = 1
		case "payload":
			bit = 2
		case "source_id":
			bit = 4
		case "timestamp":
			bit = 8
		case "seq":
			bit = 16
		case "principal":
			bit = 32
		case "signature":
			return s.skip(0) // Not a field of Message.
		default:
			return s.unknown(key, "topic", "payload", "source_id", "timestamp", "seq", "principal")
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		switch bit {
		case 1:
			return s.string(&m.Topic, &s.cache.topic)
		case 2:
			return s.payload(&m.Payload)
		case 4:
			return s.string(&m.SourceID, &s.cache.source)
		case 8:
			return s.timestamp(&m.Timestamp)
		case 16:
			return s.uint(&m.Seq)
		default:
			return s.string(&m.Principal, &s.cache.principal)
		}
	})
}

// hostMessage reads one message object written exactly as the host writes
// them (bus.Message's JSON: its keys in its order, no whitespace), with
// literal matches of the keys instead of message's general object walk,
// which costs the guest about half of its decoding in wasm. For such a
// message it gives what message gives. For anything else it reports false
// with the scanner back where it was, and message decides.
//
// A message whose bytes other than its payload, timestamp and seq are those
// of the last message read in full here (s.tmpl: one publisher's messages
// share their topic, source id and principal), in this envelope or, copied,
// in one before, is matched against them in three comparisons, and has that
// message's topic, source id and principal: the same bytes in the same place
// decode to the same values. That saves each field's own call and scan,
// which in wasm cost more than the comparisons. Its timestamp is read
// (timestamp: one batch's shared timestamp is not parsed again).
func (s *envScanner) hostMessage(m *Message) bool {
	start := s.i
	if t := &s.tmpl; t.head != nil && s.literalBytes(t.head) && s.payload(&m.Payload) {
		// mid and the timestamp: the template's last ones again (a batch's timestamp), in one
		// comparison, or mid and a timestamp read.
		ok := false
		if p := s.i; t.midStamp != nil && s.literalBytes(t.midStamp) {
			m.Timestamp, ok = t.stamp, true
		} else if s.literalBytes(t.mid) && s.timestamp(&m.Timestamp) && s.literal(`,"seq":`) {
			t.midStamp, t.stamp, ok = s.b[p:s.i], m.Timestamp, true
		}
		if ok && s.uint(&m.Seq) && s.literalBytes(t.tail) {
			m.Topic, m.SourceID, m.Principal = t.topic, t.source, t.principal
			return true
		}
	}
	s.i = start
	var p0, p1, t0, q0, q1 int // where the payload starts and ends, the timestamp starts, the seq starts and ends
	ok := s.literal(`{"topic":`) && s.peek() == '"' && s.string(&m.Topic, &s.cache.topic) &&
		s.literal(`,"payload":`) && s.mark(&p0) && s.payload(&m.Payload) && s.mark(&p1) &&
		s.literal(`,"signature":null,"source_id":`) && s.peek() == '"' && s.string(&m.SourceID, &s.cache.source) &&
		s.literal(`,"timestamp":`) && s.mark(&t0) && s.timestamp(&m.Timestamp) &&
		s.literal(`,"seq":`) && s.mark(&q0) && s.uint(&m.Seq) && s.mark(&q1)
	if ok && s.literal(`,"principal":`) {
		ok = s.peek() == '"' && s.string(&m.Principal, &s.cache.principal)
	}
	if ok && s.literal("}") {
		s.tmpl = msgTemplate{head: s.b[start:p0], mid: s.b[p1:t0], tail: s.b[q1:s.i],
			midStamp: s.b[p1:q0], stamp: m.Timestamp, topic: m.Topic, source: m.SourceID, principal: m.Principal}
		s.fresh = true
		return true
	}
	s.i = start
	*m = Message{}
	return false
}

// msgTemplate is a message hostMessage read in full: its bytes before its
// payload (from its '{'), between its payload and its timestamp, and after
// its seq (to its '}'), and what they gave. head is nil when there is none.
// midStamp is mid, the last timestamp read with it (a JSON string) and the
// `,"seq":` after it, a view of the input (nil for none), and stamp its time.
type msgTemplate struct {
	head, mid, tail          []byte
	midStamp                 []byte
	stamp                    time.Time
	topic, source, principal string
}

// keptTemplate is a msgTemplate kept for the envelopes after: its bytes are
// copies, in buf.
type keptTemplate struct {
	msgTemplate
	buf [maxKeptTemplate]byte
}

// maxKeptTemplate is the most bytes of a message a keptTemplate keeps; a
// longer template is not kept. The host's messages of a 256-byte topic, a
// source id and a short principal fit.
const maxKeptTemplate = 512

// keepTemplate keeps the envelope's last message read in full, if any, for the next envelope:
// once an envelope, not for each such message.
func (s *envScanner) keepTemplate() {
	if s.fresh {
		s.cache.tmpl.keep(&s.tmpl)
		s.fresh = false
	}
}

// keep makes t a copy of m.
func (t *keptTemplate) keep(m *msgTemplate) {
	if len(m.head)+len(m.mid)+len(m.tail) > len(t.buf) {
		*t = keptTemplate{}
		return
	}
	n := copy(t.buf[:], m.head)
	t.head = t.buf[:n:n]
	n += copy(t.buf[n:], m.mid)
	t.mid = t.buf[len(t.head):n:n]
	k := copy(t.buf[n:], m.tail)
	t.tail = t.buf[n : n+k : n+k]
	t.topic, t.source, t.principal = m.topic, m.source, m.principal
	t.midStamp, t.stamp = nil, time.Time{} // a view of the envelope, not kept
}

// mark records the scanner's offset in *at; it reports true, to sit in a
// chain of matches.
func (s *envScanner) mark(at *int) bool {
	*at = s.i
	return true
}

// payload reads a message's payload, keeping it raw. The host's custom form
// (customPrefix, a value, '}') is matched literally; any other value is
// scanned generally. null gives up: encoding/json decides.
func (s *envScanner) payload(dst *json.RawMessage) bool {
	if s.peek() == 'n' {
		return false // null: leave it to encoding/json.
	}
	start := s.i
	if !(s.literal(customPrefix) && s.skip(1) && s.literal("}")) {
		s.i = start
		if !s.skip(0) {
			return false
		}
	}
	// The full slice expression keeps an append to the Payload from
	// writing over the rest of the envelope.
	*dst = s.b[start:s.i:s.i]
	return true
}

// timestamp reads a message's timestamp: the host's form through
// parseHostTimestamp, any other string as encoding/json reads it, through
// time.Time's UnmarshalJSON (RFC 3339, strictly).
func (s *envScanner) timestamp(dst *time.Time) bool {
	if s.peek() != '"' {
		return false
	}
	// stampText is plain: parseHostTimestamp accepted it.
	if s.stampText != nil && s.repeated(unsafe.String(unsafe.SliceData(s.stampText), len(s.stampText))) {
		*dst = s.stamp
		return true
	}
	start := s.i
	if _, _, _, ok := s.str(); !ok {
		return false
	}
	text := s.b[start+1 : s.i-1]
	if s.stampText != nil && equalBytes(text, s.stampText) {
		*dst = s.stamp
		return true
	}
	if t, ok := parseHostTimestamp(text); ok {
		*dst = t
		s.stampText, s.stamp = text, t
		return true
	}
	return dst.UnmarshalJSON(s.b[start:s.i]) == nil
}

// string reads a JSON string into *dst; prev is the previous string read
// for the same field, reused if equal.
func (s *envScanner) string(dst *string, prev *prevString) bool {
	if s.peek() != '"' {
		return false
	}
	if prev.plain && s.repeated(prev.s) {
		*dst = prev.s
		return true
	}
	start, end, escaped, ok := s.str()
	if !ok {
		return false
	}
	raw := s.b[start:end]
	plain := false
	if escaped {
		*dst = string(unquote(raw))
	} else if equalString(raw, prev.s) {
		// raw, unescaped, holds prev's bytes, which are valid UTF-8: it is prev.
		*dst, plain = prev.s, true
	} else {
		plain = true
		for _, c := range raw {
			if c >= utf8.RuneSelf {
				if !utf8.Valid(raw) {
					// encoding/json replaces each bad byte with U+FFFD.
					*dst, plain = string(unquote(raw)), false
				}
				break
			}
		}
		if plain {
			*dst = string(raw)
		}
	}
	*prev = prevString{*dst, plain}
	return true
}

// repeated reports whether the input at the scanner, at a '"', is the JSON string whose content
// is exactly prev's bytes, and consumes it if so: the string a previous message had in the same
// field, compared in one pass instead of scanned by str and then compared. prev must be plain: a
// string's whole content that str read and that held no escape, in valid UTF-8 (so no '"', '\\'
// or control byte: its bytes are its own JSON text, and the same bytes here are the same string).
func (s *envScanner) repeated(prev string) bool {
	n := len(prev)
	if len(s.b)-s.i < n+2 || s.b[s.i+1+n] != '"' ||
		!equalAt(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s.b)), s.i+1), unsafe.Pointer(unsafe.StringData(prev)), n) {
		return false
	}
	s.i += n + 2
	return true
}

// prevString is the string a previous message had in a field.
type prevString struct {
	s string
	// plain: s's bytes were the JSON string's content as they are (no escape, valid UTF-8), so
	// that the same bytes in the input are the same string (envScanner.repeated).
	plain bool
}

// uint reads a JSON number that is a uint64 (digits only, in range).
func (s *envScanner) uint(dst *uint64) bool {
	start := s.i
	var n uint64
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		// 19 digits always fit; from the 20th, the check (a division: dear in wasm, so not made
		// for every digit).
		if s.i-start >= 19 && n > (1<<64-1-d)/10 {
			return false
		}
		n = n*10 + d
		s.i++
	}
	if s.i == start || (s.b[start] == '0' && s.i-start > 1) {
		return false
	}
	switch s.peek() {
	case '.', 'e', 'E':
		return false
	}
	*dst = n
	return true
}

// customPrefix is how the host writes a custom payload:
// {"type":"custom","data":<value>}.
const customPrefix = `{"type":"custom","data":`

// customData returns the value of a payload in exactly the host's custom
// form, customPrefix, a JSON value, '}' (what Data would find with
// encoding/json), or false for any other payload.
func customData(p []byte) ([]byte, bool) {
	if len(p) < len(customPrefix)+2 || string(p[:len(customPrefix)]) != customPrefix || p[len(p)-1] != '}' {
		return nil, false
	}
	s := envScanner{b: p[:len(p)-1], i: len(customPrefix)}
	if !s.skip(0) || s.i != len(s.b) {
		return nil, false
	}
	return p[len(customPrefix):s.i:s.i], true
}
