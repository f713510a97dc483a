package topics

import (
	"encoding/hex"
	"strings"
)

// The mapping of topics and patterns onto NATS subjects (see the package documentation, "Across
// hosts"). A NATS subject is a string of dot-separated tokens in which a whole token "*" is a
// wildcard for one token and a last token ">" for one or more; NATS also forbids whitespace. A
// topic's segment may be any non-empty string without a dot, so each segment is written as a
// token that NATS reads literally:
//
//   - a segment of only ASCII letters, digits, '_' and '-' is kept as it is;
//   - any other segment (a literal "*" or ">", spaces, other bytes) becomes "~" followed by the
//     lower-case hex of its bytes, e.g. "*" → "~2a". A kept token never begins with '~', so the
//     mapping is reversible (SubjectTopic).

// SubjectPrefix begins every subject that carries a bus message, so that other NATS traffic can
// share the server: topic "a.b" is subject "astrid.bus.a.b".
const SubjectPrefix = "astrid.bus."

// escapeMark begins a token that holds a segment's hex.
const escapeMark = '~'

// safeToken reports whether seg can be a NATS token as it is.
func safeToken(seg string) bool {
	if seg == "" {
		return false
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func appendToken(b []byte, seg string) []byte {
	if safeToken(seg) {
		return append(b, seg...)
	}
	b = append(b, escapeMark)
	return hex.AppendEncode(b, []byte(seg))
}

// TopicSubject returns the NATS subject a message on topic is published to, or false if topic
// can match nothing (an empty segment, more than MaxDepth segments).
func TopicSubject(topic string) (string, bool) {
	var buf [MaxDepth]string
	segs, ok := Split(topic, buf[:0])
	if !ok {
		return "", false
	}
	b := make([]byte, 0, len(SubjectPrefix)+2*len(topic)+len(segs))
	b = append(b, SubjectPrefix...)
	for i, s := range segs {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendToken(b, s)
	}
	return string(b), true
}

// PatternSubject returns the NATS subject a host subscribes to for pattern: its literal segments
// mapped as TopicSubject maps them, an inner "*" as NATS's "*" (one token) and a trailing "*" as
// NATS's ">" (one or more). NATS then delivers a superset of what Match accepts only in that it
// ignores MaxDepth; the receiving host checks every message with Match again. It returns false if
// pattern can match nothing (an empty segment, more than MaxDepth segments).
func PatternSubject(pattern string) (string, bool) {
	segs, ok := SplitPattern(pattern)
	if !ok || len(segs) > MaxDepth {
		return "", false
	}
	b := make([]byte, 0, len(SubjectPrefix)+2*len(pattern)+len(segs))
	b = append(b, SubjectPrefix...)
	for i, s := range segs {
		if i > 0 {
			b = append(b, '.')
		}
		switch {
		case s == Wildcard && i == len(segs)-1:
			b = append(b, '>')
		case s == Wildcard:
			b = append(b, '*')
		default:
			b = appendToken(b, s)
		}
	}
	return string(b), true
}

// SubjectTopic returns the topic a subject made by TopicSubject carries, or false if subject is
// not one (no SubjectPrefix, an empty token, a malformed escape).
func SubjectTopic(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix)
	if !ok || rest == "" {
		return "", false
	}
	var b strings.Builder
	n := 0
	for tok := range strings.SplitSeq(rest, ".") {
		if n > 0 {
			b.WriteByte('.')
		}
		n++
		if n > MaxDepth || tok == "" {
			return "", false
		}
		if tok[0] != escapeMark {
			if !safeToken(tok) {
				return "", false
			}
			b.WriteString(tok)
			continue
		}
		raw, err := hex.DecodeString(tok[1:])
		if err != nil || len(raw) == 0 || hex.EncodeToString(raw) != tok[1:] || safeToken(string(raw)) || strings.IndexByte(string(raw), '.') >= 0 {
			return "", false // not what appendToken writes
		}
		b.Write(raw)
	}
	return b.String(), true
}
