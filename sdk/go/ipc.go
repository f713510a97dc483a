package astrid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// IPC: capsules talk to each other by publishing JSON messages on topics of
// the host's bus and subscribing to topic patterns.
//
// A topic is a dot-separated list of non-empty segments, such as
// "ping.v1.request": at most 256 bytes and 8 segments. A pattern is a topic
// in which a segment may be "*": it matches exactly one segment, except as
// the last segment, where it matches one or more ("ping.*" matches
// "ping.v1" and "ping.v1.request").
//
// What a capsule may do is declared in its manifest: it may publish to a
// topic only if a pattern of [capabilities] ipc_publish matches it, and
// subscribe to a pattern only if a pattern of ipc_subscribe covers it (every
// topic the requested pattern matches is matched by the declared one). A
// capsule that declares none may do neither.
//
// The host traps the call, with its message, when it refuses an IPC request:
// a topic or pattern it does not allow or that is malformed, a payload over
// 5 MiB, more than 10 MiB published in one second, a 129th subscription, an
// unknown subscription handle. The functions here return errors only for
// what they can detect themselves.

// MaxRecvTimeout is the longest a single Recv waits: the host caps the
// timeout at 60 s, so longer timeouts wait 60 s.
const MaxRecvTimeout = 60 * time.Second

// Publish publishes payload, encoded with encoding/json, on topic. Every
// subscriber whose pattern matches the topic receives a copy; publishing on a
// topic nobody listens to is not an error. The capsule's manifest must allow
// the topic in [capabilities] ipc_publish, or the host traps the call.
//
// The host stores the payload in its tagged form (see Message.Payload):
// usually {"type":"custom","data":payload}, which subscribers get back as
// Message.Data. An object whose "type" is one of the host's own message kinds
// ("user_input", "connect", …) and that has that kind's fields becomes that
// kind of message instead; wrap such a value as {"type":"custom","data":value}
// to send it as plain data.
//
// Publish returns an error, without publishing, if topic is empty or payload
// cannot be encoded.
func Publish(topic string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("astrid: Publish %s: encoding the payload: %w", topic, err)
	}
	return PublishJSON(topic, raw)
}

// PublishJSON is Publish with a payload that is already encoded as JSON. It
// returns an error, without publishing, if topic is empty. It does not check
// raw itself: the host does, and a payload that is not valid JSON traps the
// call ("IPC payload is not valid JSON"). Checking here too would cost a
// capsule that publishes a lot about a tenth of its publishing speed.
func PublishJSON(topic string, raw []byte) error {
	if topic == "" {
		return errors.New("astrid: Publish: empty topic")
	}
	t := AllocateString(topic)
	p := AllocateBytes(raw)
	hostIPCPublish(t.handle, p.handle)
	p.Free()
	t.Free()
	return nil
}

// Subscription is a subscription of the capsule to a topic pattern, from
// Subscribe: messages published on matching topics queue up for it in the
// host until the capsule reads them with Poll or Recv. The queue is bounded:
// when it is full the oldest message is discarded, and counted in the next
// Envelope's Lagged.
//
// Unlike a Memory, a Subscription is not tied to the current call: it lives,
// in the host, until Unsubscribe or the end of the capsule instance, so a
// capsule may keep it in a package variable and read it in later calls. The
// host allows 128 subscriptions per capsule instance.
type Subscription struct {
	handle  uint64
	text    string // handle in decimal, the form host functions take it in: formatted once
	pattern string
	owned   bool // runtime-owned: an interceptor's handle, which cannot be unsubscribed
	closed  bool
}

// Subscribe subscribes the capsule to the topics that pattern matches. The
// capsule's manifest must allow the pattern in [capabilities] ipc_subscribe,
// or the host traps the call. Only messages published after Subscribe
// returns are delivered.
//
// Subscribe returns an error if pattern is empty or the host's answer is not
// a subscription handle.
func Subscribe(pattern string) (*Subscription, error) {
	if pattern == "" {
		return nil, errors.New("astrid: Subscribe: empty pattern")
	}
	p := AllocateString(pattern)
	h := FindMemory(hostIPCSubscribe(p.handle))
	p.Free()
	b := h.Bytes()
	h.Free()
	id, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("astrid: Subscribe %s: the host returned %q, not a subscription handle", pattern, b)
	}
	return &Subscription{handle: id, text: strconv.FormatUint(id, 10), pattern: pattern}, nil
}

// Handle returns the subscription's handle, the number by which the host
// knows it (handles count from 1 in each capsule instance).
func (s *Subscription) Handle() uint64 { return s.handle }

// Pattern returns the topic pattern the subscription was made for (for an
// interceptor's subscription, the interceptor's topic).
func (s *Subscription) Pattern() string { return s.pattern }

// Unsubscribe ends the subscription: the messages still queued for it are
// discarded, and it can no longer be read. It returns an error, without
// asking the host, if the subscription was already ended or belongs to an
// interceptor (see InterceptorHandles), which the host keeps for the life
// of the capsule.
func (s *Subscription) Unsubscribe() error {
	if err := s.usable("Unsubscribe"); err != nil {
		return err
	}
	if s.owned {
		return fmt.Errorf("astrid: Unsubscribe: subscription %d belongs to an interceptor and cannot be unsubscribed", s.handle)
	}
	h := s.handleMemory()
	hostIPCUnsubscribe(h.handle)
	h.Free()
	s.closed = true
	return nil
}

// Poll returns the messages queued for the subscription, without waiting:
// an Envelope with no messages if there are none. One Envelope carries at
// most about 10 MiB of payloads; what does not fit stays queued for the next
// Poll or Recv.
func (s *Subscription) Poll() (*Envelope, error) {
	if err := s.usable("Poll"); err != nil {
		return nil, err
	}
	h := s.handleMemory()
	env := FindMemory(hostIPCPoll(h.handle))
	h.Free()
	return decodeEnvelope("Poll", env)
}

// Recv waits until at least one message is queued for the subscription, or
// until timeout has passed, and returns the queued messages as Poll does: an
// Envelope with no messages if the timeout passed first. The timeout is
// rounded up to a whole millisecond and capped at MaxRecvTimeout; a timeout
// of 0 or less does not wait. Recv also returns early, with no messages, when
// the host unloads the capsule, and the subscription is then gone.
//
// The capsule does nothing else while Recv waits, so the wait counts against
// the call's timeout ([limits] call_timeout), except in a run-loop capsule's
// run export, which has none.
func (s *Subscription) Recv(timeout time.Duration) (*Envelope, error) {
	if err := s.usable("Recv"); err != nil {
		return nil, err
	}
	h := s.handleMemory()
	ms := recvMillis(timeout)
	tt := lastTimeout.Load()
	if tt == nil || tt.ms != ms {
		tt = &timeoutText{ms, strconv.FormatInt(ms, 10)}
		lastTimeout.Store(tt)
	}
	t := AllocateString(tt.text)
	env := FindMemory(hostIPCRecv(h.handle, t.handle))
	t.Free()
	h.Free()
	return decodeEnvelope("Recv", env)
}

// lastTimeout is the timeout of the last Recv and its decimal text, for the next Recv, which
// usually has the same: formatting it costs a Recv an allocation and a division a digit in wasm.
var lastTimeout atomic.Pointer[timeoutText]

// timeoutText is a Recv timeout in milliseconds and its decimal text.
type timeoutText struct {
	ms   int64
	text string
}

// recvMillis returns the timeout of a Recv in whole milliseconds, rounded up,
// from 0 to MaxRecvTimeout.
func recvMillis(timeout time.Duration) int64 {
	switch {
	case timeout >= MaxRecvTimeout:
		return MaxRecvTimeout.Milliseconds()
	case timeout > 0:
		return int64((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	return 0
}

// usable returns an error if the subscription cannot be used for op.
func (s *Subscription) usable(op string) error {
	if s == nil {
		return errors.New("astrid: " + op + ": nil Subscription")
	}
	if s.closed {
		return fmt.Errorf("astrid: %s: subscription %d (%s) was unsubscribed", op, s.handle, s.pattern)
	}
	return nil
}

// handleMemory returns a new block holding the subscription's handle in
// decimal, the form in which host functions take it.
func (s *Subscription) handleMemory() Memory {
	if s.text != "" {
		return AllocateString(s.text)
	}
	var buf [20]byte // on the stack: FormatUint allocates from handle 100
	return AllocateBytes(strconv.AppendUint(buf[:0], s.handle, 10))
}

// Envelope is what Poll and Recv return: the messages read from a
// subscription, oldest first.
type Envelope struct {
	// Messages are the messages read, in the order they were published (by
	// each publisher; messages of different publishers interleave).
	Messages []Message `json:"messages"`
	// Dropped is kept for compatibility with upstream Astrid, where it is 1
	// when a message was lost because it did not fit in the envelope. This
	// host never loses one that way and reports 0.
	Dropped uint64 `json:"dropped"`
	// Lagged is the number of messages discarded from the subscription's
	// queue, because it was full, since the previous Poll or Recv.
	Lagged uint64 `json:"lagged"`
}

// Message is a message received from the bus.
type Message struct {
	// Topic is the topic the message was published on.
	Topic string `json:"topic"`
	// Payload is the message's payload in the host's tagged form: a JSON
	// object whose "type" says what kind of message it is. What a capsule
	// publishes is usually {"type":"custom","data":<what it published>};
	// Data and Decode unwrap it. Payload may share memory with the
	// envelope it came in (and with the other messages' Payloads): do not
	// modify it in place; copy it first.
	Payload json.RawMessage `json:"payload"`
	// SourceID identifies the capsule instance that published the message
	// (a UUID, new each time a capsule is loaded; the nil UUID for messages
	// of the host itself).
	SourceID string `json:"source_id"`
	// Timestamp is when the message was published.
	Timestamp time.Time `json:"timestamp"`
	// Seq is the message's number on the bus: it increases with each message
	// published, from 1.
	Seq uint64 `json:"seq"`
	// Principal is the principal (the user) on whose behalf the message was
	// published; empty for a system event.
	Principal string `json:"principal,omitempty"`
}

// Data returns the message's data, as upstream Astrid hands it to guests: for
// a custom payload, its "data" (the JSON the publisher passed to Publish);
// for a raw_json payload, the object without its "type"; for any other kind
// of message, the whole tagged Payload. The result may share memory with
// Payload.
func (m Message) Data() json.RawMessage {
	if d, ok := customData(m.Payload); ok {
		return d
	}
	var head struct {
		Type *string         `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(m.Payload, &head) != nil || head.Type == nil {
		return m.Payload
	}
	switch *head.Type {
	case "custom":
		if head.Data == nil {
			return json.RawMessage("null")
		}
		return head.Data
	case "raw_json":
		var obj map[string]json.RawMessage
		if json.Unmarshal(m.Payload, &obj) != nil {
			return m.Payload
		}
		delete(obj, "type")
		b, err := json.Marshal(obj)
		if err != nil {
			return m.Payload
		}
		return b
	}
	return m.Payload
}

// Decode decodes the message's Data into v with encoding/json.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Data(), v); err != nil {
		return fmt.Errorf("astrid: decoding a message on %s: %w", m.Topic, err)
	}
	return nil
}

// decodeEnvelope decodes and frees the envelope block that the host function
// named op returned.
func decodeEnvelope(op string, m Memory) (*Envelope, error) {
	b := m.Bytes()
	m.Free()
	if env, ok := decodeEnvelopeFast(b); ok {
		return env, nil
	}
	env := new(Envelope)
	if err := json.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("astrid: %s: decoding the host's envelope %.200q: %w", op, b, err)
	}
	return env, nil
}

// InterceptorHandle is a subscription the host made for one of the capsule's
// interceptors ([[interceptor]] in its manifest) when it loaded a run-loop
// capsule (one with a run export): the capsule reads the events for the
// interceptor from it, through Subscription.
type InterceptorHandle struct {
	// HandleID is the subscription's handle.
	HandleID uint64 `json:"handle_id"`
	// Action is the interceptor's action, the name that says what to do with
	// its events.
	Action string `json:"action"`
	// Topic is the topic pattern the interceptor listens to.
	Topic string `json:"topic"`
}

// InterceptorHandles returns the subscriptions the host made for the
// capsule's interceptors: none unless the capsule is a run-loop capsule with
// [[interceptor]] entries in its manifest.
func InterceptorHandles() ([]InterceptorHandle, error) {
	m := FindMemory(hostGetInterceptorHandles())
	b := m.Bytes()
	m.Free()
	var hs []InterceptorHandle
	if len(bytes.TrimSpace(b)) == 0 {
		return hs, nil
	}
	if err := json.Unmarshal(b, &hs); err != nil {
		return nil, fmt.Errorf("astrid: InterceptorHandles: decoding %.200q: %w", b, err)
	}
	return hs, nil
}

// Subscription returns the interceptor's subscription, to read its events
// with Poll or Recv. It cannot be unsubscribed: the host keeps it for the life
// of the capsule instance.
func (ih InterceptorHandle) Subscription() *Subscription {
	return &Subscription{handle: ih.HandleID, text: strconv.FormatUint(ih.HandleID, 10), pattern: ih.Topic, owned: true}
}
