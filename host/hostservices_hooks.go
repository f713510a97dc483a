package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/shared/logtext"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shared/serdejson"
)

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_TRIGGER_HOOK] = triggerHook
}

// triggerHook is astrid_trigger_hook({"hook","payload"}) (upstream 0.5's): it invokes, all at
// once and with no caller context, the interceptor of every other Ready capsule without a run
// export whose event matches hook, with payload as its JSON, and returns the JSON array of their
// results in the order they complete: Continue with empty bytes is left out, Continue and Final
// bytes are included when they are JSON, and Deny, failures and non-JSON bytes are left out
// (and logged). The request (at most 1 MiB, checked before it is read) that is not
// {"hook": string, "payload": JSON} traps the guest's call with "invalid trigger request: ...".
//
// A guest waits, inside this call, for the interceptors it triggers; each of them waits for its
// capsule's call slot. A capsule whose interceptor is itself waiting (transitively, through
// astrid_trigger_hook) for the calling capsule would never get its slot back, so it is left
// out with a logged error instead of deadlocking (see waitGraph). Waiting for a slot ends with
// the caller's call time limit; an interceptor that started runs to its own capsule's limit.
func triggerHook(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	hook, payload, err := parseTriggerRequest(args[0])
	if err != nil {
		return nil, guestFailed("invalid trigger request: %v", err)
	}
	d := s.inst.host.dispatch
	targets := d.matching(hook, s.inst)
	results := make(chan json.RawMessage, len(targets))
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := d.triggerOne(ctx, s.inst, t, hook, payload); r != nil {
				results <- r
			}
		}()
	}
	wg.Wait()
	close(results)
	out := []byte{'['}
	for r := range results {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	return append(out, ']'), nil
}

// triggerOne invokes one interceptor for astrid_trigger_hook and returns its result's JSON, or
// nil when it is left out of the results.
func (d *dispatcher) triggerOne(ctx context.Context, from *Instance, t hook, hookName string, payload []byte) json.RawMessage {
	logArgs := func(extra ...any) []any {
		return append([]any{"caller", from.ID(), "action", logtext.Escape(t.action), "hook", logtext.Escape(hookName)}, extra...)
	}
	release, err := d.graph.wait(from, t.inst)
	if err != nil {
		t.inst.log.Warn("interceptor left out of a hook trigger", logArgs("error", err.Error())...)
		return nil
	}
	defer release()
	v, err := t.inst.invokeInterceptor(ctx, t.action, payload, nil)
	switch {
	case err != nil:
		t.inst.log.Warn("interceptor invocation failed during hook trigger", logArgs("error", err.Error())...)
		return nil
	case v.Kind == Deny:
		t.inst.log.Warn("interceptor denied during hook trigger", logArgs("reason", logtext.Escape(v.Reason))...)
		return nil
	case v.Kind == Continue && len(v.Data) == 0:
		return nil
	}
	r, err := normalJSON(v.Data)
	if err != nil {
		t.inst.log.Warn("interceptor returned non-JSON response, skipping", logArgs("bytes", len(v.Data))...)
		return nil
	}
	return r
}

// parseTriggerRequest reads {"hook": string, "payload": any JSON} as upstream's serde struct
// does (keys exact, other keys ignored) and returns the hook and the payload as upstream
// re-serialises it (normalJSON).
func parseTriggerRequest(raw []byte) (string, []byte, error) {
	if err := guard.CheckPayload(raw); err != nil {
		return "", nil, errors.New("not JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return "", nil, errors.New(`want a JSON object {"hook": string, "payload": any JSON}`)
	}
	rawHook, ok := fields["hook"]
	if !ok {
		return "", nil, errors.New("missing field `hook`")
	}
	var hook string
	if rawHook[0] != '"' || json.Unmarshal(rawHook, &hook) != nil {
		return "", nil, fmt.Errorf("hook: want a string, got %s", kindOf(rawHook))
	}
	rawPayload, ok := fields["payload"]
	if !ok {
		return "", nil, errors.New("missing field `payload`")
	}
	payload, err := normalJSON(rawPayload)
	if err != nil {
		return "", nil, fmt.Errorf("payload: %v", err)
	}
	return hook, payload, nil
}

// kindOf names the JSON type of a value, for errors.
func kindOf(v json.RawMessage) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '"':
		return "a string"
	}
	return "a number"
}

// normalJSON re-serialises one JSON value as upstream's serde_json::Value does: compact, object
// keys sorted (the last of duplicate keys wins), no HTML escaping; numbers keep their text. It
// refuses what serde_json would not parse (guard.CheckPayload).
func normalJSON(raw []byte) (json.RawMessage, error) {
	if err := guard.CheckPayload(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return serdejson.Marshal(v)
}

// waitGraph records which instances wait, through astrid_trigger_hook, for which others'
// interceptors: an edge a → b while a's call (holding a's call slot) waits for, or runs, an
// interceptor of b. An edge that would close a cycle is refused, so no set of instances can end
// up waiting for each other's call slots.
type waitGraph struct {
	mu    sync.Mutex
	edges map[*Instance]map[*Instance]int
}

// wait adds the edge from → to, unless to already waits (transitively) for from; release
// removes it.
func (g *waitGraph) wait(from, to *Instance) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reaches(to, from) {
		return nil, fmt.Errorf("capsule %s is itself waiting, through astrid_trigger_hook, for capsule %s: invoking it would deadlock", to.ID(), from.ID())
	}
	if g.edges == nil {
		g.edges = map[*Instance]map[*Instance]int{}
	}
	if g.edges[from] == nil {
		g.edges[from] = map[*Instance]int{}
	}
	g.edges[from][to]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.edges[from][to]--; g.edges[from][to] == 0 {
			delete(g.edges[from], to)
			if len(g.edges[from]) == 0 {
				delete(g.edges, from)
			}
		}
	}, nil
}

// reaches reports whether b is a or a waits (transitively) for b.
func (g *waitGraph) reaches(a, b *Instance) bool {
	seen := map[*Instance]bool{}
	stack := []*Instance{a}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == b {
			return true
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		for m := range g.edges[n] {
			stack = append(stack, m)
		}
	}
	return false
}
