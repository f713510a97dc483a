//go:build wasip1

// Command hook is a test-only capsule without a run export: the host dispatches its
// [[interceptor]]s to its astrid_hook_trigger export, which does what the action says. An action
// is a list of space-separated directives, run in order:
//
//	rec          publish the input ({"name","arguments"}) with the caller context, as
//	             {"name","arguments","caller"}, to test.v1.seen
//	out=HEX      answer with these bytes (the verdict byte first); the default answer is empty
//	out=@        answer with the bytes the payload's "out" member gives in hex
//	stamp        publish {"t": the time entered, in ns since the epoch} to test.v1.seen
//	#LABEL       nothing (names an action apart from another capsule's)
//	trigger=HOOK call astrid_trigger_hook({"hook": HOOK, "payload": <the arguments as JSON>})
//	             and answer 0x00 followed by its result
//	sleep=MS     sleep that many milliseconds
//	trap         panic (the call traps)
//	hang         compute forever (the call hits its time limit)
//
// Its export trigger calls astrid_trigger_hook with its input and returns the result.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

//go:wasmimport extism:host/user astrid_trigger_hook
func hostTriggerHook(req uint64) uint64

// triggerHook calls astrid_trigger_hook with req and returns its result.
func triggerHook(req []byte) []byte {
	m := astrid.AllocateBytes(req)
	h := hostTriggerHook(m.Handle())
	m.Free()
	if h == 0 {
		return nil
	}
	out := astrid.FindMemory(h)
	b := out.Bytes()
	out.Free()
	return b
}

// hookInput is upstream's astrid_hook_trigger input.
type hookInput struct {
	Name      string `json:"name"`
	Arguments []int  `json:"arguments"`
}

// spin is written by hang's loop so the compiler keeps it.
var spin uint64

//go:wasmexport astrid_hook_trigger
func astridHookTrigger() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var req hookInput
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		entered := time.Now().UnixNano()
		var out []byte
		for _, d := range strings.Fields(req.Name) {
			verb, arg, _ := strings.Cut(d, "=")
			if strings.HasPrefix(verb, "#") {
				continue
			}
			switch verb {
			case "stamp":
				if err := astrid.PublishJSON("test.v1.seen", append(strconv.AppendInt([]byte(`{"t":`), entered, 10), '}')); err != nil {
					return nil, err
				}
			case "rec":
				rec := map[string]json.RawMessage{"name": mustJSON(req.Name), "arguments": mustJSON(req.Arguments), "caller": caller()}
				if err := astrid.Publish("test.v1.seen", rec); err != nil {
					return nil, err
				}
			case "out":
				if arg == "@" {
					var p struct{ Out string }
					if err := json.Unmarshal(payloadOf(req), &p); err != nil {
						return nil, err
					}
					arg = p.Out
				}
				b, err := hex.DecodeString(arg)
				if err != nil {
					return nil, err
				}
				out = b
			case "trigger":
				r := triggerHook(mustJSON(map[string]json.RawMessage{"hook": mustJSON(arg), "payload": payloadOf(req)}))
				out = append([]byte{0}, r...)
			case "sleep":
				ms, err := strconv.Atoi(arg)
				if err != nil {
					return nil, err
				}
				time.Sleep(time.Duration(ms) * time.Millisecond)
			case "trap":
				panic("trap requested by the action")
			case "hang":
				for {
					spin++
				}
			default:
				return nil, errors.New("unknown directive " + d)
			}
		}
		return out, nil
	})
}

// payloadOf is the payload bytes of an input.
func payloadOf(req hookInput) []byte {
	payload := make([]byte, len(req.Arguments))
	for i, c := range req.Arguments {
		payload[i] = byte(c)
	}
	return payload
}

//go:wasmexport trigger
func trigger() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) { return triggerHook(in), nil })
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
