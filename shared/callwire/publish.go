package callwire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxPublishBatch is the most publications one Publish frame carries: the shim sends a batch
// when it holds this many, and the host refuses a frame with more (a violation), so what one
// frame makes the host hold is bounded by the count as well as by MaxHostFrameBytes.
const MaxPublishBatch = 512

// NotTaken is the error a guest gets for n of its publishes that the host did not take (the
// link to other hosts refused them, or the connection to the host ended before they were
// sent), why naming the latest reason. The host reports its refusals at the guest's next host
// call or at the end of its export call; the shim reports the batches it could not send. Both
// use this text, once per refusal.
func NotTaken(n int, why string) error {
	return fmt.Errorf("the host did not take %d published message(s): %s", n, why)
}

// The field numbers of pb.IpcPublishRequest (messages = 1) and pb.IpcPublication (topic = 1,
// payload = 2), which AppendPublication and DecodePublishes encode and decode by hand: the
// publish path is the bus's hot path, and a generated message per publication costs three
// allocations on each side.
const (
	fieldMessages = 1
	fieldTopic    = 1
	fieldPayload  = 2
)

// AppendPublication appends one publication to b, the body of a Publish frame being built (an
// encoded pb.IpcPublishRequest), encoded exactly as proto.Marshal encodes it.
func AppendPublication(b []byte, topic string, payload []byte) []byte {
	inner := protowire.SizeTag(fieldTopic) + protowire.SizeBytes(len(topic)) +
		protowire.SizeTag(fieldPayload) + protowire.SizeBytes(len(payload))
	if topic == "" {
		inner -= protowire.SizeTag(fieldTopic) + protowire.SizeBytes(0)
	}
	if len(payload) == 0 {
		inner -= protowire.SizeTag(fieldPayload) + protowire.SizeBytes(0)
	}
	b = protowire.AppendTag(b, fieldMessages, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	if topic != "" {
		b = protowire.AppendTag(b, fieldTopic, protowire.BytesType)
		b = protowire.AppendString(b, topic)
	}
	if len(payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, payload)
	}
	return b
}

// Publication is one publication of a decoded Publish frame: views into the frame's body,
// valid until the next frame is read.
type Publication struct {
	Topic   []byte
	Payload []byte
}

// errTooManyPublications is DecodePublishes' refusal of a frame of more than MaxPublishBatch.
var errTooManyPublications = fmt.Errorf("a publish frame of more than %d publications (a shim sends at most %d per frame)", MaxPublishBatch, MaxPublishBatch)

// DecodePublishes decodes the body of a Publish frame (a pb.IpcPublishRequest) into out[:0],
// without copying: each publication's topic and payload are sub-slices of body. It accepts
// exactly what proto.Unmarshal accepts, with the same result (unknown fields skipped, the last
// of a repeated scalar field winning, a topic that is not UTF-8 refused), and refuses a frame
// of more than MaxPublishBatch publications.
func DecodePublishes(body []byte, out []Publication) ([]Publication, error) {
	out = out[:0]
	for len(body) > 0 {
		msg, rest, ok := appendedField(body, tagMessages) // as AppendPublication writes it
		if !ok {
			num, typ, n := consumeTag(body)
			if n < 0 {
				return out, decodeError(n)
			}
			body = body[n:]
			if num != fieldMessages || typ != protowire.BytesType {
				n = protowire.ConsumeFieldValue(num, typ, body)
				if n < 0 {
					return out, decodeError(n)
				}
				body = body[n:]
				continue
			}
			msg, n = protowire.ConsumeBytes(body)
			if n < 0 {
				return out, decodeError(n)
			}
			rest = body[n:]
		}
		body = rest
		if len(out) == MaxPublishBatch {
			return out, errTooManyPublications
		}
		p, err := decodePublication(msg)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// decodePublication decodes one pb.IpcPublication.
func decodePublication(b []byte) (Publication, error) {
	if p, ok := decodeAppended(b); ok {
		return p, nil
	}
	var p Publication
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return p, decodeError(n)
		}
		b = b[n:]
		if (num == fieldTopic || num == fieldPayload) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return p, decodeError(n)
			}
			b = b[n:]
			if num == fieldTopic {
				if !utf8.Valid(v) { // as proto.Unmarshal checks each occurrence
					return p, errors.New("a publication's topic is not valid UTF-8")
				}
				p.Topic = v
			} else {
				p.Payload = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return p, decodeError(n)
		}
		b = b[n:]
	}
	return p, nil
}

// The single-byte tags AppendPublication writes: of a publication, and of its fields.
const (
	tagMessages = byte(fieldMessages<<3 | protowire.BytesType)
	tagTopic    = byte(fieldTopic<<3 | protowire.BytesType)
	tagPayload  = byte(fieldPayload<<3 | protowire.BytesType)
)

// decodeAppended decodes a publication encoded as AppendPublication encodes one (a shim's): a
// topic, then a payload, each present, nothing else. It reports false for anything else,
// which decodePublication then decodes field by field; where it reports true, that decoding
// gives the same publication (a topic that is not UTF-8 is left to it, to refuse). It spares the
// hot path the general loop's calls per field.
func decodeAppended(b []byte) (Publication, bool) {
	topic, b, ok := appendedField(b, tagTopic)
	if !ok || !utf8.Valid(topic) {
		return Publication{}, false
	}
	payload, b, ok := appendedField(b, tagPayload)
	if !ok || len(b) != 0 {
		return Publication{}, false
	}
	return Publication{Topic: topic, Payload: payload}, true
}

// appendedField consumes a length-delimited field of b whose tag is the single byte tag: its
// value and the rest of b, or false.
func appendedField(b []byte, tag byte) (value, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	v, n := protowire.ConsumeBytes(b[1:])
	if n < 0 {
		return nil, nil, false
	}
	return v, b[1+n:], true
}

// consumeTag is protowire.ConsumeTag that also refuses field numbers above
// protowire.MaxValidNumber, as proto.Unmarshal does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1 // protowire's code for a malformed field number is unexported: any negative
	}
	return num, typ, n
}

func decodeError(n int) error {
	return fmt.Errorf("a malformed publish frame: %w", protowire.ParseError(n))
}
