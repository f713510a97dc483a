//go:build wasip1

// Command relay is a test-only run-loop capsule for the hot-reload tests. Its run export
// subscribes to relay.v1.in and then does what its [env] mode says:
//
//   - any mode not listed below (the default "relay", or a version tag such as "v2"): it signals
//     ready and republishes each message's data on relay.v1.out as {"mode":MODE,"data":DATA}, so
//     a test sees which instance relayed what;
//   - "no-ready": it never signals ready and never receives (it sleeps), so a reload to it
//     times out;
//   - "crash": it panics once subscribed, before it signals ready;
//   - "gated": it signals ready only once a message arrives on relay.v1.gate, then relays as
//     "gated", so a test holds a reload at the point where the new instance has taken over;
//   - "patient": it relays, but each of its recvs waits up to 10 minutes, longer than a reload
//     drains the instance it replaces.
package main

import (
	"encoding/json"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

//go:wasmexport run
func run() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		mode, _ := astrid.Config("mode")
		sub, err := astrid.Subscribe("relay.v1.in")
		if err != nil {
			return nil, err
		}
		switch mode {
		case "no-ready":
			for {
				time.Sleep(time.Hour)
			}
		case "crash":
			panic("relay: crashing on purpose, after subscribing and before signalling ready")
		case "gated":
			gate, err := astrid.Subscribe("relay.v1.gate")
			if err != nil {
				return nil, err
			}
			for {
				env, err := gate.Recv(5 * time.Second)
				if err != nil {
					return nil, err
				}
				if len(env.Messages) > 0 {
					break
				}
			}
		}
		astrid.SignalReady()
		wait := 5 * time.Second
		if mode == "patient" {
			wait = 10 * time.Minute // longer than a reload's drain (TestReloadEndsParkedRecv)
		}
		for {
			env, err := sub.Recv(wait)
			if err != nil {
				return nil, err
			}
			for _, m := range env.Messages {
				out, err := json.Marshal(map[string]any{"mode": mode, "data": json.RawMessage(m.Data())})
				if err != nil {
					return nil, err
				}
				if err := astrid.PublishJSON("relay.v1.out", out); err != nil {
					return nil, err
				}
			}
		}
	})
}
