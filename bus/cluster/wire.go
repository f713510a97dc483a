package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/topics"
)

// What travels on NATS. A bus message is published on topics.TopicSubject(topic) with the body
//
//	HEADER '\n' PAYLOAD
//
// where HEADER is the JSON of dataHeader (encoding/json never writes a raw newline) and PAYLOAD
// is the message's tagged payload JSON, byte for byte. The topic is read back from the subject
// (topics.SubjectTopic), so the subject NATS routed by and the topic the receiver checks are one.
// Control messages (controlMsg) are JSON on ControlSubject.

// ControlSubject carries the hosts' control messages: hello, interest, hwm and bye.
const ControlSubject = "astrid.ctl"

// Bounds of what a host accepts from NATS. Anything over a bound is dropped and logged.
const (
	// MaxPatterns bounds the distinct patterns one host subscribes to across hosts, and the
	// patterns a host accepts in another host's interest.
	MaxPatterns = 4096
	// MaxInterestBytes bounds the sum of those patterns' lengths, so that a host's full interest
	// fits one control message under NATS's default max_payload (1 MiB).
	MaxInterestBytes = 256 << 10
	// MaxHosts bounds the other hosts whose interest a host keeps, and the origins whose
	// sequence state it keeps (the least recently heard from is forgotten first).
	MaxHosts = 256
	// maxIDBytes bounds a host id, a source_id and a principal.
	maxIDBytes = 64
	// hwmChunkBytes is about the largest hwm message; larger sets of marks are split.
	hwmChunkBytes = 128 << 10
)

// mark is a publisher's count for one of the patterns other hosts subscribe to: in its epoch
// Gen, N messages matching Pattern have been sent. JSON: [pattern, gen, n].
type mark struct {
	Pattern string
	Gen     uint64
	N       uint64
}

func (m mark) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{m.Pattern, m.Gen, m.N})
}

func (m *mark) UnmarshalJSON(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if len(a) != 3 {
		return errors.New("a mark is [pattern, gen, n]")
	}
	if err := json.Unmarshal(a[0], &m.Pattern); err != nil {
		return err
	}
	if err := json.Unmarshal(a[1], &m.Gen); err != nil {
		return err
	}
	return json.Unmarshal(a[2], &m.N)
}

// dataHeader is what a bus message carries besides its topic and payload.
type dataHeader struct {
	Origin    string `json:"o"`            // the publishing host's link id
	SourceID  string `json:"s"`            // the publishing capsule instance
	Time      int64  `json:"ts"`           // the publish time, Unix nanoseconds
	Principal string `json:"pr,omitempty"` // the principal the message acts for
	Marks     []mark `json:"m"`            // the publisher's counts of the patterns it matched
}

// encodeData returns the body of m.
func encodeData(origin string, m *bus.Message, marks []mark) ([]byte, error) {
	h, err := json.Marshal(dataHeader{Origin: origin, SourceID: m.SourceID, Time: m.Timestamp.UnixNano(), Principal: m.Principal, Marks: marks})
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(h)+1+len(m.Payload))
	body = append(append(h, '\n'), m.Payload...)
	return body, nil
}

// decodeData reads a message another host published on subject. checkPrincipal is the host's
// rule for principal ids. Every field is checked: a hostile NATS client gets its message dropped.
func decodeData(subject string, body []byte, checkPrincipal func(string) error) (bus.Message, dataHeader, error) {
	var h dataHeader
	topic, ok := topics.SubjectTopic(subject)
	if !ok {
		return bus.Message{}, h, fmt.Errorf("subject %q is not a mapped topic", subject)
	}
	i := bytes.IndexByte(body, '\n')
	if i < 0 {
		return bus.Message{}, h, errors.New("no header line")
	}
	if err := json.Unmarshal(body[:i], &h); err != nil {
		return bus.Message{}, h, fmt.Errorf("header: %w", err)
	}
	payload := body[i+1:]
	switch {
	case !json.Valid(payload):
		return bus.Message{}, h, errors.New("payload is not valid JSON")
	case !validID(h.Origin) || !validID(h.SourceID):
		return bus.Message{}, h, fmt.Errorf("origin or source_id is empty, longer than %d bytes or not printable UTF-8", maxIDBytes)
	case h.Principal != "" && checkPrincipal != nil && checkPrincipal(h.Principal) != nil:
		return bus.Message{}, h, fmt.Errorf("principal: %w", checkPrincipal(h.Principal))
	case len(h.Marks) > MaxPatterns:
		return bus.Message{}, h, fmt.Errorf("%d marks; at most %d", len(h.Marks), MaxPatterns)
	}
	m := bus.Message{
		Topic:     topic,
		Payload:   json.RawMessage(bytes.Clone(payload)),
		SourceID:  h.SourceID,
		Timestamp: time.Unix(0, h.Time).UTC(),
		Principal: h.Principal,
	}
	return m, h, nil
}

// validID reports whether s can be a host id or a source_id: 1 to maxIDBytes bytes of printable
// ASCII.
func validID(s string) bool {
	if s == "" || len(s) > maxIDBytes || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Control message types.
const (
	ctlHello    = "hello"    // a host joined or reconnected: the others answer with interest and hwm
	ctlInterest = "interest" // a host's patterns: the full set (Set), or a change (Add, Del)
	ctlHWM      = "hwm"      // a publisher's marks: how many it sent per pattern
	ctlBye      = "bye"      // a host leaves: forget its interest
)

// controlMsg is one control message.
type controlMsg struct {
	Type   string   `json:"t"`
	Origin string   `json:"o"`
	Set    []string `json:"set,omitempty"`  // interest: the full set, replacing the previous one
	Full   bool     `json:"full,omitempty"` // interest: Set is the full set (it may be empty)
	Add    []string `json:"add,omitempty"`
	Del    []string `json:"del,omitempty"`
	Marks  []mark   `json:"m,omitempty"` // hwm
	// For addresses an hwm to one host: it is a member of the epochs the marks name (they open
	// its subscriptions, or answer its hello).
	For string `json:"for,omitempty"`
}

// decodeControl reads a control message and checks its bounds.
func decodeControl(body []byte) (controlMsg, error) {
	var c controlMsg
	if err := json.Unmarshal(body, &c); err != nil {
		return c, err
	}
	switch {
	case !validID(c.Origin) || (c.For != "" && !validID(c.For)):
		return c, fmt.Errorf("origin is empty, longer than %d bytes or not printable", maxIDBytes)
	case len(c.Set)+len(c.Add)+len(c.Del) > MaxPatterns || len(c.Marks) > MaxPatterns:
		return c, fmt.Errorf("more than %d patterns", MaxPatterns)
	}
	switch c.Type {
	case ctlHello, ctlInterest, ctlHWM, ctlBye:
	default:
		return c, fmt.Errorf("unknown control message type %q", c.Type)
	}
	return c, nil
}
