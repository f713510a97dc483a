package host

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/metrics"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// HookExport is the guest export that runs a capsule's interceptors (upstream's
// astrid_hook_trigger).
const HookExport = "astrid_hook_trigger"

// VerdictKind is what an interceptor decided about an event.
type VerdictKind int

// The verdicts of an interceptor, by the first byte of its output (upstream's InterceptResult).
const (
	// Continue passes the event on: to the next interceptor of a chain with the verdict's bytes
	// as its payload, or with the payload unchanged when they are empty.
	Continue VerdictKind = iota
	// Final ends the chain with the verdict's bytes as the response.
	Final
	// Deny ends the chain; Reason says why.
	Deny
)

// Verdict bytes: the first byte of an astrid_hook_trigger output.
const (
	verdictContinue byte = 0x00
	verdictFinal    byte = 0x01
	verdictDeny     byte = 0x02
)

// Verdict is an interceptor's decoded output.
type Verdict struct {
	Kind   VerdictKind
	Data   []byte // Continue and Final: the bytes after the verdict byte
	Reason string // Deny: the bytes after the verdict byte, as UTF-8 (invalid sequences as U+FFFD)
}

// DecodeVerdict decodes an astrid_hook_trigger output as upstream does: empty is Continue with
// no bytes; 0x00, 0x01 and 0x02 followed by the rest are Continue, Final and Deny (the rest is
// the reason); any other first byte is Continue with the whole output, for forward
// compatibility.
func DecodeVerdict(out []byte) Verdict {
	if len(out) == 0 {
		return Verdict{Kind: Continue}
	}
	switch out[0] {
	case verdictContinue:
		return Verdict{Kind: Continue, Data: out[1:]}
	case verdictFinal:
		return Verdict{Kind: Final, Data: out[1:]}
	case verdictDeny:
		return Verdict{Kind: Deny, Reason: lossyUTF8(out[1:])}
	}
	return Verdict{Kind: Continue, Data: out}
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each invalid sequence becomes U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		out = append(out, r) // RuneError for an invalid sequence
		b = b[n:]
	}
	return string(out)
}

// hookInput is upstream's astrid_hook_trigger input, {"name": action, "arguments": payload},
// with the payload bytes as a JSON array of numbers (serde's encoding of a byte slice), so an
// input takes up to 4 bytes per payload byte plus the action.
func hookInput(action string, payload []byte) ([]byte, error) {
	name, err := serdejson.Marshal(action)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(`{"name":,"arguments":[]}`)+len(name)+4*len(payload))
	out = append(out, `{"name":`...)
	out = append(out, name...)
	out = append(out, `,"arguments":[`...)
	for k, c := range payload {
		if k > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	out = append(out, "]}"...)
	if len(out) > MaxInputBytes {
		return nil, fmt.Errorf("the interceptor's input would be %d bytes (a %d-byte payload as a JSON array of numbers); a call's input is limited to %d bytes (10 MiB)",
			len(out), len(payload), MaxInputBytes)
	}
	return out, nil
}

// invokeInterceptor calls the instance's astrid_hook_trigger for action with payload and
// decodes its verdict. caller is the bus message's context (nil for astrid_trigger_hook, which
// has none). ctx bounds only the wait for the instance's call slot; the call itself runs to its
// time limit (see invokeHeld).
func (i *Instance) invokeInterceptor(ctx context.Context, action string, payload []byte, caller *callerContext) (Verdict, error) {
	input, err := hookInput(action, payload)
	if err != nil {
		i.hooks.invoked.Add(1)
		i.hooks.failed.Add(1)
		return Verdict{}, err
	}
	i.hooks.invoked.Add(1)
	start := time.Now()
	out, err := i.invoke(ctx, HookExport, input, 0, caller)
	i.recordInvocation(metrics.KindInterceptor, start, err)
	if err != nil {
		i.hooks.failed.Add(1)
		return Verdict{}, err
	}
	return DecodeVerdict(out), nil
}
