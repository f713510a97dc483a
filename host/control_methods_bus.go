package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/topics"
	"github.com/astrid-go/astrid/host/control"
)

// The control methods on the bus: the operator's publish and tail (astrid-host publish, tail).
const (
	// ControlPublish publishes one message for the operator: params PublishParams, result
	// PublishResult.
	ControlPublish = "publish"
	// ControlTail follows the bus: params TailParams; it answers with a stream of TailFrames
	// until the client closes the connection or the host shuts down.
	ControlTail = "tail"
)

// Limits of the operator's bus methods.
const (
	// MaxOperatorPayloadBytes bounds what the operator sends through the control socket: the
	// JSON payload of a publish and the input of a call --running, 512 KiB (so that either fits
	// a control frame, the input even base64-encoded).
	MaxOperatorPayloadBytes = 512 << 10
	// MaxTailPatterns bounds the patterns of one tail: 16.
	MaxTailPatterns = 16
	// MaxTailMessageBytes is the largest message, as its JSON line, that a tail through the
	// control socket shows: one control frame less room for the frame's own fields. A larger
	// message is reported by its topic, seq and size instead.
	MaxTailMessageBytes = control.MaxFrameBytes - 1024
	// tailBatchBytes bounds the payload bytes one Recv of a tail takes off its queue.
	tailBatchBytes = 1 << 20
)

// PublishParams are the params of ControlPublish. Payload is JSON text, carried as a string so
// that the bus gets its bytes as given.
type PublishParams struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
}

// PublishResult is what ControlPublish did: the topic and the message's seq on the bus.
type PublishResult struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
}

// TailParams are the params of ControlTail: the topic patterns to follow, each checked with
// CheckOperatorTopic.
type TailParams struct {
	Patterns []string `json:"patterns"`
}

// TailFrame is one frame of a tail: a message (its JSON exactly as `run --tail` prints it), or,
// for Pattern's subscription, how many messages its full queue dropped since its last frame
// (Lagged), or a message too large to show (TooLarge).
type TailFrame struct {
	Message  json.RawMessage `json:"message,omitempty"`
	Pattern  string          `json:"pattern,omitempty"`
	Lagged   uint64          `json:"lagged,omitempty"`
	TooLarge *TailTooLarge   `json:"too_large,omitempty"`
}

// TailTooLarge names a message a tail does not show because its JSON is over
// MaxTailMessageBytes.
type TailTooLarge struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
	Bytes int    `json:"bytes"`
}

// CheckOperatorTopic checks a topic the operator publishes to or a pattern they follow
// (astrid-host publish and tail, run --publish and --tail): the bus's rule for a topic's
// segments (topics.CheckSegments: not empty, no empty segment, at most topics.MaxTopicBytes
// bytes), and valid UTF-8. A pattern's "*" is a wildcard as in a capsule's subscription. The
// operator is not held to a guest's limit of segments. The error completes a sentence that
// starts with the topic.
func CheckOperatorTopic(topic string) error {
	if err := topics.CheckSegments(topic); err != nil {
		return err
	}
	if !utf8.ValidString(topic) {
		return errors.New("is not valid UTF-8")
	}
	return nil
}

// CheckOperatorPublish checks a publish of the operator (astrid-host publish, run --publish),
// as the client and the host both do: the topic (CheckOperatorTopic), then the payload, which
// must be at most MaxOperatorPayloadBytes and JSON as a guest's payload must be (bus/guard's
// rule). The error names the topic or the payload and what would be valid.
func CheckOperatorPublish(topic string, payload []byte) error {
	if err := CheckOperatorTopic(topic); err != nil {
		return fmt.Errorf("topic %q %w", topic, err)
	}
	if len(payload) > MaxOperatorPayloadBytes {
		return fmt.Errorf("payload of %d bytes: the operator publishes at most %d bytes (512 KiB)", len(payload), MaxOperatorPayloadBytes)
	}
	if _, err := bus.PayloadFromGuest(payload); err != nil {
		return fmt.Errorf("payload %q: %w (want one JSON value: an object, array, string, number, true, false or null)", clip(string(payload), 64), err)
	}
	return nil
}

// PublishOperator publishes payload (any JSON) to topic for the operator, after
// CheckOperatorPublish: from the host (source_id the nil UUID, as the host's own events) for
// the default principal (DefaultPrincipal), wrapped as a guest's payload would be. It returns
// the message's seq.
func (h *Host) PublishOperator(topic string, payload []byte) (uint64, error) {
	if err := CheckOperatorPublish(topic, payload); err != nil {
		return 0, err
	}
	p, err := bus.PayloadFromGuest(payload)
	if err != nil {
		return 0, err
	}
	// The operator's message is shared with other hosts, as a guest's is.
	ms := []bus.Message{{Topic: topic, Payload: p, SourceID: hostSourceID, Principal: DefaultPrincipal}}
	if _, err := h.bus.PublishShared(ms); err != nil {
		return 0, err
	}
	return ms[0].Seq, nil
}

// CheckTailPatterns checks the patterns of a tail: 1 to MaxTailPatterns of them, each one
// CheckOperatorTopic accepts.
func CheckTailPatterns(patterns []string) error {
	if len(patterns) == 0 || len(patterns) > MaxTailPatterns {
		return fmt.Errorf("want 1 to %d patterns, got %d", MaxTailPatterns, len(patterns))
	}
	for _, p := range patterns {
		if err := CheckOperatorTopic(p); err != nil {
			return fmt.Errorf("pattern %q %w", p, err)
		}
	}
	return nil
}

// busMethods are the control methods on the bus.
func (h *Host) busMethods(hs control.Handlers) {
	hs[ControlPublish] = func(_ context.Context, raw json.RawMessage) (any, error) {
		var p PublishParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf(`%s: want params {"topic": string, "payload": JSON text}: %v`, ControlPublish, err)
		}
		seq, err := h.PublishOperator(p.Topic, []byte(p.Payload))
		if err != nil {
			return nil, err
		}
		return PublishResult{Topic: p.Topic, Seq: seq}, nil
	}
	hs[ControlTail] = func(_ context.Context, raw json.RawMessage) (any, error) {
		var p TailParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf(`%s: want params {"patterns": [string]}: %v`, ControlTail, err)
		}
		if err := CheckTailPatterns(p.Patterns); err != nil {
			return nil, err
		}
		return h.tail(p.Patterns), nil
	}
}

// tail subscribes to each pattern now (so that what is published once the client has its
// answer reaches it) and returns the stream that sends what they receive. Each subscription
// has the bus's bounded queue: a client that reads slowly never holds up a publisher, its
// queue drops the oldest messages instead, and the next frame says how many.
func (h *Host) tail(patterns []string) control.Stream {
	subs := make([]*bus.Subscription, len(patterns))
	for k, p := range patterns {
		subs[k] = h.bus.Subscribe(p)
	}
	return func(ctx context.Context, send func(any) error) error {
		defer func() {
			for _, s := range subs {
				s.Close()
			}
		}()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, len(subs))
		for _, s := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- followSubscription(ctx, s, send)
			}()
		}
		err := <-errs // the first to end (the client left, a send failed) ends them all
		cancel()
		wg.Wait()
		return err
	}
}

// followSubscription sends what sub receives as TailFrames until ctx ends or a send fails.
// When the host is stopping, what sub still holds (the host's last events) is sent first.
func followSubscription(ctx context.Context, sub *bus.Subscription, send func(any) error) error {
	for {
		env, err := sub.Recv(ctx, tailBatchBytes)
		if serr := sendEnvelope(sub.Pattern(), env, send); serr != nil {
			return serr
		}
		if err == nil {
			continue
		}
		if control.Stopping(ctx) {
			sub.Close() // nothing more is queued: the drain ends
			for env := sub.Poll(tailBatchBytes); len(env.Messages) > 0 || env.Lagged > 0; env = sub.Poll(tailBatchBytes) {
				if serr := sendEnvelope(sub.Pattern(), env, send); serr != nil {
					return serr
				}
			}
		}
		return err
	}
}

// sendEnvelope sends what one envelope of the pattern's subscription holds: how many messages
// were dropped before it, then each message (or, for one too large, its topic, seq and size).
func sendEnvelope(pattern string, env bus.Envelope, send func(any) error) error {
	if env.Lagged > 0 {
		if err := send(TailFrame{Pattern: pattern, Lagged: env.Lagged}); err != nil {
			return err
		}
	}
	for _, m := range env.Messages {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		frame := TailFrame{Message: line}
		if len(line) > MaxTailMessageBytes {
			frame = TailFrame{Pattern: pattern, TooLarge: &TailTooLarge{Topic: m.Topic, Seq: m.Seq, Bytes: len(line)}}
		}
		if err := send(frame); err != nil {
			return err
		}
	}
	return nil
}

// clip cuts s to at most n bytes (at a rune boundary), marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
