package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// PayloadFromGuest turns the payload bytes of a guest's publish into the
// tagged IpcPayload JSON that a Message carries, by upstream's
// IpcPayload::from_json_value rules:
//
//   - raw that guard.CheckPayload refuses (not JSON as serde_json sees it)
//     is guard.ErrPayloadNotJSON;
//   - a JSON object whose "type" is one of upstream 0.5's tags is read as
//     that variant: its fields are checked for presence and JSON type,
//     defaults are applied (user_input and agent_response: session_id
//     "default"), absent optional fields are left out and unknown fields are
//     dropped, giving the JSON that upstream would re-serialise; if that
//     fails, the payload is custom with the whole value as data;
//   - {"type":"custom","data":X} is custom with data X;
//   - any other value (no or unknown "type", not an object) is custom with
//     the whole value as data.
//
// The result is compact. The fields of upstream's LLM types
// (llm_request.messages/tools, llm_stream_event.event, llm_response.response,
// tool_execute_result.result) are checked for their JSON kind only and kept
// as they are.
func PayloadFromGuest(raw []byte) (json.RawMessage, error) {
	shape, err := guard.CheckPayloadShape(raw)
	if err != nil {
		return nil, err
	}
	return ConvertPayload(raw, shape), nil
}

// ConvertPayload is PayloadFromGuest for raw that guard.CheckPayloadShape has
// accepted already with shape (the host's guard checks every publish before
// it converts it): the check's pass over the payload is not made twice, and
// the shape spares the conversion its own scans. Only a payload whose shape
// has guard.ShapeTypeKey can be one of upstream's variants, so only it is
// read member by member; every other payload is custom with raw (compacted if
// the shape has guard.ShapeSpace) as its data. Given raw that
// CheckPayloadShape refuses, or another payload's shape, the result is not
// valid.
func ConvertPayload(raw []byte, shape guard.PayloadShape) json.RawMessage {
	if shape&guard.ShapeTypeKey != 0 {
		if members, err := objectMembers(raw); err == nil {
			if tag, ok := typeTag(members); ok {
				if variant, known := variants[tag]; known {
					if out, ok := variant(tag, members); ok {
						return out
					}
				}
			}
		}
	}
	if shape&guard.ShapeSpace != 0 {
		return customOf(compact(raw))
	}
	return customOf(raw)
}

// CustomPayload returns the custom payload {"type":"custom","data":v} with
// v encoded by encoding/json (without HTML escaping), for the host's own
// events.
func CustomPayload(v any) (json.RawMessage, error) {
	data, err := serdejson.Marshal(v)
	if err != nil {
		return nil, err
	}
	return customOf(data), nil
}

// customOf wraps data, valid compact JSON, as a custom payload.
func customOf(data []byte) json.RawMessage {
	out := make([]byte, 0, len(data)+len(`{"type":"custom","data":}`))
	out = append(out, `{"type":"custom","data":`...)
	out = append(out, data...)
	return append(out, '}')
}

// GuestBytes returns what a guest or an interceptor is given for a payload
// (upstream's to_guest_bytes): for custom and raw_json the inner value's
// JSON, for every other variant the tagged JSON itself. A payload that is not
// a tagged object is returned as it is.
func GuestBytes(payload json.RawMessage) []byte {
	members, err := objectMembers(payload)
	if err != nil {
		return payload
	}
	tag, _ := typeTag(members)
	switch tag {
	case "custom":
		data, ok := lastMember(members, "data")
		if !ok {
			return payload
		}
		return data
	case "raw_json":
		return appendObject(nil, withoutType(members))
	}
	return payload
}

// member is one key/value pair of a JSON object, in document order.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object data, in order and
// with duplicates, or an error if data is not exactly one JSON object.
func objectMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		ms = append(ms, member{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return ms, nil
}

// lastMember returns the value of key; as in serde_json, the last of
// duplicate keys wins.
func lastMember(ms []member, key string) (json.RawMessage, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key == key {
			return ms[i].value, true
		}
	}
	return nil, false
}

// typeTag returns the string value of the "type" member.
func typeTag(ms []member) (string, bool) {
	v, ok := lastMember(ms, "type")
	if !ok || !isString(v) {
		return "", false
	}
	var tag string
	if json.Unmarshal(v, &tag) != nil {
		return "", false
	}
	return tag, true
}

// withoutType returns the members other than "type", each key once at its
// first position with its last value (serde_json's map semantics).
func withoutType(ms []member) []member {
	out := make([]member, 0, len(ms))
	pos := make(map[string]int, len(ms))
	for _, m := range ms {
		if m.key == "type" {
			continue
		}
		if i, dup := pos[m.key]; dup {
			out[i].value = m.value
			continue
		}
		pos[m.key] = len(out)
		out = append(out, m)
	}
	return out
}

// appendObject appends the JSON object of ms (values compacted) to b.
func appendObject(b []byte, ms []member) []byte {
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, m.key)
		b = append(b, ':')
		b = append(b, compact(m.value)...)
	}
	return append(b, '}')
}

// compact returns raw without insignificant whitespace (raw itself if it is
// already compact or is not valid JSON).
func compact(raw []byte) []byte {
	if !hasSpace(raw) {
		return raw
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

// hasSpace reports whether raw contains a JSON whitespace byte anywhere
// (inside strings too; then compact merely does unnecessary work).
func hasSpace(raw []byte) bool {
	for _, c := range raw {
		if c == ' ' || c == '\n' || c == '\r' || c == '\t' {
			return true
		}
	}
	return false
}

// firstByte returns the first byte of raw after whitespace, or 0.
func firstByte(raw []byte) byte {
	for _, c := range raw {
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			return c
		}
	}
	return 0
}

func isObject(raw []byte) bool { return firstByte(raw) == '{' }
func isArray(raw []byte) bool  { return firstByte(raw) == '[' }
func isString(raw []byte) bool { return firstByte(raw) == '"' }
func isNull(raw []byte) bool   { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }
