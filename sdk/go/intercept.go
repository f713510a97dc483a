package astrid

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Interceptors: a capsule's [[interceptor]] entries name a topic pattern (event) and an action:
//
//	[[interceptor]]
//	event = "session.v1.append"
//	action = "handle_append"
//	priority = 100   # optional; lower runs first when several capsules intercept one event
//
// For a capsule without a run export, the host calls its astrid_hook_trigger export for every
// bus message on a matching topic, with the action and the message's payload, and reads the
// capsule's Verdict from the output. Package github.com/astrid-go/astrid/sdk/go/intercept
// exports astrid_hook_trigger and dispatches to handlers registered by action name; this file
// holds the encoding both sides agree on (upstream's astrid_hook_trigger ABI).

// HookEvent is one event an interceptor handles: the input of astrid_hook_trigger.
type HookEvent struct {
	// Action is the [[interceptor]] action the event was routed to.
	Action string
	// Payload is the message's payload as upstream hands it to guests: for a message published
	// as JSON (a custom payload), that JSON; in a chain of interceptors, what the previous one
	// passed on with Continue.
	Payload []byte
}

// Decode decodes the event's payload into v with encoding/json.
func (e HookEvent) Decode(v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("astrid: interceptor %s: decoding the payload %.200q: %w", e.Action, e.Payload, err)
	}
	return nil
}

// VerdictKind is what an interceptor decided: go on, stop with a result, or refuse.
type VerdictKind byte

// The verdicts, with their status bytes in astrid_hook_trigger's output.
const (
	// VerdictContinue passes the event on to the next interceptor of the chain, with the
	// verdict's data as its payload (the same payload when the data is empty).
	VerdictContinue VerdictKind = 0x00
	// VerdictFinal stops the chain: the verdict's data is the result.
	VerdictFinal VerdictKind = 0x01
	// VerdictDeny stops the chain and refuses the event; the data is the reason, which the
	// host logs.
	VerdictDeny VerdictKind = 0x02
)

// String returns "continue", "final" or "deny".
func (k VerdictKind) String() string {
	switch k {
	case VerdictContinue:
		return "continue"
	case VerdictFinal:
		return "final"
	case VerdictDeny:
		return "deny"
	}
	return fmt.Sprintf("VerdictKind(0x%02x)", byte(k))
}

// Verdict is an interceptor's answer: its kind and data (the payload passed on, the result, or
// the reason for a deny). The zero Verdict is Continue(nil).
type Verdict struct {
	kind VerdictKind
	data []byte
}

// Continue lets the event go on; payload, when not empty, replaces the payload the next
// interceptor of the chain gets. Continue(nil) changes nothing.
func Continue(payload []byte) Verdict { return Verdict{VerdictContinue, payload} }

// Final stops the chain with result: later interceptors do not see the event.
func Final(result []byte) Verdict { return Verdict{VerdictFinal, result} }

// Deny stops the chain and refuses the event, for reason (logged by the host).
func Deny(reason string) Verdict { return Verdict{VerdictDeny, []byte(reason)} }

// Kind returns the verdict's kind.
func (v Verdict) Kind() VerdictKind { return v.kind }

// Data returns the verdict's data: the payload passed on, the result or the reason.
func (v Verdict) Data() []byte { return v.data }

// Encode returns the verdict as astrid_hook_trigger's output: its status byte then its data,
// or nothing for Continue(nil), which the host reads as the same.
func (v Verdict) Encode() []byte {
	if v.kind == VerdictContinue && len(v.data) == 0 {
		return nil
	}
	out := make([]byte, 0, 1+len(v.data))
	out = append(out, byte(v.kind))
	return append(out, v.data...)
}

// ParseVerdict decodes astrid_hook_trigger's output as upstream's host does: nothing is
// Continue(nil); a first byte 0x00, 0x01 or 0x02 is Continue, Final or Deny with the rest as
// data; any other first byte is Continue with the whole output as data. It never fails.
func ParseVerdict(out []byte) Verdict {
	if len(out) == 0 {
		return Verdict{}
	}
	switch k := VerdictKind(out[0]); k {
	case VerdictContinue, VerdictFinal, VerdictDeny:
		return Verdict{k, out[1:]}
	}
	return Verdict{VerdictContinue, out}
}

// InterceptorFunc handles one event routed to an interceptor's action. An error fails the
// invocation (the host logs it and the chain goes on without this interceptor's verdict).
type InterceptorFunc func(ev HookEvent) (Verdict, error)

// Interceptors maps actions to their handlers; Dispatch runs one. Package intercept keeps one
// for the capsule; a capsule that exports astrid_hook_trigger itself may keep its own.
type Interceptors map[string]InterceptorFunc

// Dispatch decodes astrid_hook_trigger's input, runs the handler of its action and returns the
// encoded verdict. An input it cannot decode, or an action with no handler, is an error naming
// what arrived and what is handled.
func (is Interceptors) Dispatch(input []byte) ([]byte, error) {
	ev, err := DecodeHookInput(input)
	if err != nil {
		return nil, err
	}
	fn, ok := is[ev.Action]
	if !ok {
		return nil, fmt.Errorf("astrid: no interceptor handles action %q (handled: %s)", ev.Action, is.actions())
	}
	v, err := fn(ev)
	if err != nil {
		return nil, err
	}
	return v.Encode(), nil
}

// actions lists the handled actions, sorted, for errors.
func (is Interceptors) actions() string {
	names := make([]string, 0, len(is))
	for a := range is {
		names = append(names, strconv.Quote(a))
	}
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// DecodeHookInput decodes astrid_hook_trigger's input, upstream's
// {"name": action, "arguments": [payload bytes as numbers 0-255]}. A missing or null
// "arguments" is an empty payload; a missing "name" or an element that is not a byte is an
// error.
func DecodeHookInput(input []byte) (HookEvent, error) {
	var raw struct {
		Name      *string         `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(input, &raw); err != nil {
		return HookEvent{}, fmt.Errorf("astrid: astrid_hook_trigger: the input %.100q is not {\"name\": action, \"arguments\": [bytes]}: %w", input, err)
	}
	if raw.Name == nil {
		return HookEvent{}, errors.New(`astrid: astrid_hook_trigger: the input has no "name" (the interceptor's action)`)
	}
	payload, err := decodeByteArray(raw.Arguments)
	if err != nil {
		return HookEvent{}, fmt.Errorf("astrid: astrid_hook_trigger: action %q: %w", *raw.Name, err)
	}
	return HookEvent{Action: *raw.Name, Payload: payload}, nil
}

// EncodeHookInput encodes ev as astrid_hook_trigger's input (what the host sends), the
// inverse of DecodeHookInput: for tests and for capsules that call one another's interceptors.
func EncodeHookInput(ev HookEvent) []byte {
	out := make([]byte, 0, len(ev.Action)+32+4*len(ev.Payload))
	name, _ := json.Marshal(ev.Action) // a string always encodes
	out = append(out, `{"name":`...)
	out = append(out, name...)
	out = append(out, `,"arguments":[`...)
	for i, c := range ev.Payload {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendUint8(out, c)
	}
	return append(out, "]}"...)
}

// appendUint8 appends c in decimal.
func appendUint8(out []byte, c byte) []byte {
	switch {
	case c >= 100:
		out = append(out, '0'+c/100, '0'+c/10%10)
	case c >= 10:
		out = append(out, '0'+c/10)
	}
	return append(out, '0'+c%10)
}

// decodeByteArray decodes a JSON array of integers 0-255 (serde's Vec<u8>), already checked
// to be valid JSON by the caller, without building a []any: payloads run to megabytes.
func decodeByteArray(raw json.RawMessage) ([]byte, error) {
	s := trimJSONSpace(raw)
	if len(s) == 0 || string(s) == "null" {
		return []byte{}, nil
	}
	if s[0] != '[' {
		return nil, fmt.Errorf(`"arguments" is %.40q, not an array of bytes`, s)
	}
	out := make([]byte, 0, len(s)/3)
	i := 1
	for n := 0; ; n++ {
		i = skipJSONSpace(s, i)
		if i < len(s) && s[i] == ']' && n == 0 {
			return out, nil
		}
		v, j := 0, i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' && j-i < 4 {
			v = v*10 + int(s[j]-'0')
			j++
		}
		if j == i || v > 255 || (j-i > 1 && s[i] == '0') || (j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E' || (s[j] >= '0' && s[j] <= '9'))) {
			return nil, fmt.Errorf(`"arguments" element %d is not an integer from 0 to 255`, n)
		}
		out = append(out, byte(v))
		i = skipJSONSpace(s, j)
		if i >= len(s) {
			return nil, fmt.Errorf(`"arguments" ends after element %d without "]"`, n)
		}
		switch s[i] {
		case ',':
			i++
		case ']':
			return out, nil
		default:
			return nil, fmt.Errorf(`"arguments" has %q after element %d, not "," or "]"`, s[i], n)
		}
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is not JSON white space.
func skipJSONSpace(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// trimJSONSpace trims JSON white space from both ends of s.
func trimJSONSpace(s []byte) []byte {
	s = s[skipJSONSpace(s, 0):]
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
