//go:build wasip1

// Command ipc is a test-only capsule: each export performs the IPC operations its JSON input
// describes, so tests can drive real guest publishes and subscriptions through a real shim.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

// subs keeps this instance's subscriptions between calls (globals live as long as the instance).
var subs = map[uint64]*astrid.Subscription{}

type publishInput struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"` // published as is (may be invalid JSON on purpose)
	Raw     string          `json:"raw"`     // if set: publish these bytes as they are (e.g. invalid JSON)
	RawB64  []byte          `json:"raw_b64"` // if set: publish these bytes (base64 in the input), e.g. invalid UTF-8
	Bytes   int             `json:"bytes"`   // if set: publish a JSON string of this many bytes instead
	Count   int             `json:"count"`   // default 1; each payload of a count > 1 gets "n"
	// Sizes, if set, publishes one JSON string of each of these many bytes, in turn (instead of
	// the above), then subscribes to ThenSubscribe if that is set: a host call right after them.
	Sizes         []int  `json:"sizes"`
	ThenSubscribe string `json:"then_subscribe"`
}

//go:wasmexport publish
func publish() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var p publishInput
		if err := json.Unmarshal(in, &p); err != nil {
			return nil, err
		}
		if p.Sizes != nil {
			return publishSizes(p)
		}
		count := max(p.Count, 1)
		var sized []byte // the payload of a bytes-sized publish: the same bytes every time, built once
		if p.Bytes > 0 {
			sized = []byte(`"` + strings.Repeat("x", p.Bytes-2) + `"`)
		}
		for n := 1; n <= count; n++ {
			payload := []byte(p.Payload)
			switch {
			case p.Raw != "":
				payload = []byte(p.Raw)
			case p.RawB64 != nil:
				payload = p.RawB64
			case p.Bytes > 0:
				payload = sized
			case p.Count > 1:
				payload = fmt.Appendf(nil, `{"n":%d}`, n)
			}
			if err := astrid.PublishJSON(p.Topic, payload); err != nil {
				return nil, err
			}
		}
		return []byte("ok"), nil
	})
}

// publishSizes is publish's sizes mode.
func publishSizes(p publishInput) ([]byte, error) {
	for _, n := range p.Sizes {
		if err := astrid.PublishJSON(p.Topic, []byte(`"`+strings.Repeat("x", max(n, 2)-2)+`"`)); err != nil {
			return nil, err
		}
	}
	if p.ThenSubscribe != "" {
		if _, err := astrid.Subscribe(p.ThenSubscribe); err != nil {
			return nil, err
		}
	}
	return []byte("ok"), nil
}

//go:wasmexport subscribe
func subscribe() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		s, err := astrid.Subscribe(string(in))
		if err != nil {
			return nil, err
		}
		subs[s.Handle()] = s
		return []byte(strconv.FormatUint(s.Handle(), 10)), nil
	})
}

func sub(in []byte) (*astrid.Subscription, error) {
	h, err := strconv.ParseUint(strings.TrimSpace(string(in)), 10, 64)
	if err != nil {
		return nil, err
	}
	if s, ok := subs[h]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("no subscription %d in this instance", h)
}

//go:wasmexport unsubscribe
func unsubscribe() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		s, err := sub(in)
		if err != nil {
			return nil, err
		}
		delete(subs, s.Handle())
		return []byte("ok"), s.Unsubscribe()
	})
}

// summary is what poll and recv output: the data of each message, and the envelope's counters.
type summary struct {
	Data    []json.RawMessage `json:"data"`
	Topics  []string          `json:"topics"`
	Seqs    []uint64          `json:"seqs"`
	Sources []string          `json:"sources"`
	Lagged  uint64            `json:"lagged"`
}

func summarize(env *astrid.Envelope) ([]byte, error) {
	s := summary{Data: []json.RawMessage{}, Topics: []string{}, Seqs: []uint64{}, Sources: []string{}, Lagged: env.Lagged}
	for _, m := range env.Messages {
		s.Data = append(s.Data, m.Data())
		s.Topics = append(s.Topics, m.Topic)
		s.Seqs = append(s.Seqs, m.Seq)
		s.Sources = append(s.Sources, m.SourceID)
	}
	return json.Marshal(s)
}

//go:wasmexport poll
func poll() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		s, err := sub(in)
		if err != nil {
			return nil, err
		}
		env, err := s.Poll()
		if err != nil {
			return nil, err
		}
		return summarize(env)
	})
}

//go:wasmexport recv
func recv() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var r struct {
			Handle    uint64 `json:"handle"`
			TimeoutMs int64  `json:"timeout_ms"`
		}
		if err := json.Unmarshal(in, &r); err != nil {
			return nil, err
		}
		s, err := sub([]byte(strconv.FormatUint(r.Handle, 10)))
		if err != nil {
			return nil, err
		}
		env, err := s.Recv(time.Duration(r.TimeoutMs) * time.Millisecond)
		if err != nil {
			return nil, err
		}
		return summarize(env)
	})
}

// drain receives on a subscription until count messages have arrived or been counted as lagged,
// for the throughput benchmark. Output: {"received":n,"lagged":m,"envelopes":e}, e the number of
// Recv calls it made.
//
//go:wasmexport drain
func drain() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var r struct {
			Handle uint64 `json:"handle"`
			Count  uint64 `json:"count"`
		}
		if err := json.Unmarshal(in, &r); err != nil {
			return nil, err
		}
		s, err := sub([]byte(strconv.FormatUint(r.Handle, 10)))
		if err != nil {
			return nil, err
		}
		var received, lagged, envelopes uint64
		for received+lagged < r.Count {
			envelopes++
			env, err := s.Recv(10 * time.Second)
			if err != nil {
				return nil, err
			}
			if len(env.Messages) == 0 && env.Lagged == 0 {
				return nil, fmt.Errorf("drain: nothing for 10 s after %d messages", received)
			}
			received += uint64(len(env.Messages))
			lagged += env.Lagged
		}
		return json.Marshal(map[string]uint64{"received": received, "lagged": lagged, "envelopes": envelopes})
	})
}

// latency measures publish→recv: count times it publishes {"t":<ns>} to out and waits on its
// subscription to in for the reply (from reflect, in another capsule). Output: the round-trip
// times in ns.
//
//go:wasmexport latency
func latency() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var r struct {
			Handle uint64 `json:"handle"`
			Out    string `json:"out"`
			Count  int    `json:"count"`
		}
		if err := json.Unmarshal(in, &r); err != nil {
			return nil, err
		}
		s, err := sub([]byte(strconv.FormatUint(r.Handle, 10)))
		if err != nil {
			return nil, err
		}
		rtts := make([]int64, 0, r.Count)
		for range r.Count {
			t0 := time.Now()
			if err := astrid.PublishJSON(r.Out, []byte(`{"ping":1}`)); err != nil {
				return nil, err
			}
			env, err := s.Recv(10 * time.Second)
			if err != nil {
				return nil, err
			}
			if len(env.Messages) == 0 {
				return nil, fmt.Errorf("latency: no reply within 10 s")
			}
			rtts = append(rtts, time.Since(t0).Nanoseconds())
		}
		return json.Marshal(rtts)
	})
}

// reflect answers count messages on a subscription by publishing each one's data to out.
//
//go:wasmexport reflect
func reflect() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var r struct {
			Handle uint64 `json:"handle"`
			Out    string `json:"out"`
			Count  int    `json:"count"`
		}
		if err := json.Unmarshal(in, &r); err != nil {
			return nil, err
		}
		s, err := sub([]byte(strconv.FormatUint(r.Handle, 10)))
		if err != nil {
			return nil, err
		}
		for n := 0; n < r.Count; {
			env, err := s.Recv(10 * time.Second)
			if err != nil {
				return nil, err
			}
			if len(env.Messages) == 0 {
				return nil, fmt.Errorf("reflect: nothing for 10 s after %d messages", n)
			}
			for _, m := range env.Messages {
				if err := astrid.PublishJSON(r.Out, m.Data()); err != nil {
					return nil, err
				}
				n++
			}
		}
		return []byte("ok"), nil
	})
}

// interceptors outputs astrid_get_interceptor_handles' list, and makes each one pollable by its
// handle through poll and recv.
//
//go:wasmexport interceptors
func interceptors() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		hs, err := astrid.InterceptorHandles()
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			subs[h.HandleID] = h.Subscription()
		}
		return json.Marshal(hs)
	})
}

// run makes this a run-loop capsule, whose [[interceptor]]s the host subscribes for it (the
// handles interceptors lists) rather than dispatching them to astrid_hook_trigger. Started (a
// run with the run loop on), it says it is ready and waits until the capsule unloads.
//
//go:wasmexport run
func run() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		astrid.SignalReady()
		for {
			hs, err := astrid.InterceptorHandles()
			if err != nil || len(hs) == 0 {
				return nil, errors.New("the run loop has no interceptor handle to wait on")
			}
			if _, err := hs[0].Subscription().Recv(astrid.MaxRecvTimeout); err != nil {
				return nil, err
			}
		}
	})
}
