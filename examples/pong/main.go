//go:build wasip1

// Command pong is an example capsule of the astrid Go SDK: the answering half
// of a ping/pong pair that talk over IPC (see examples/ping). A request is
// {"n":k} published on ping.v1.request; pong answers it with {"n":k} on
// ping.v1.reply. Its exports:
//
//   - serve: subscribes to ping.v1.request and answers up to N requests (the
//     input, a decimal integer; 1 if empty), waiting at most 5 s for each;
//     it outputs the number of requests answered, which is less than N if
//     the wait ran out first;
//   - run: the run-loop of `astrid-host run`, which starts it once after
//     loading the capsule: it answers requests until the capsule is
//     unloaded.
//
// Requests published before pong subscribes are not seen by it. The manifest
// allows publishing on ping.v1.reply and subscribing to ping.v1.request.
//
// Build it from the repository root:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/pong/pong.wasm ./examples/pong
package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

// main is required by the c-shared build mode and never called: the host runs
// _initialize and then the exports.
func main() {}

const (
	requestTopic = "ping.v1.request"
	replyTopic   = "ping.v1.reply"
	// wait is how long serve waits for each request, and how long run waits
	// in one Recv before it waits again.
	wait = 5 * time.Second
)

// pingMessage is both a request and its reply.
type pingMessage struct {
	N *int64 `json:"n"`
}

//go:wasmexport serve
func serve() int32 { return astrid.Export(serveN) }

func serveN(input []byte) ([]byte, error) {
	n, err := parseCount(input, 1)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	sub, err := astrid.Subscribe(requestTopic)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	answered := int64(0)
	for answered < n {
		env, err := sub.Recv(wait)
		if err != nil {
			return nil, err
		}
		if len(env.Messages) == 0 {
			astrid.Logf(astrid.LogInfo, "no request within %v; answered %d of %d", wait, answered, n)
			break
		}
		reportLag(env)
		for i, m := range env.Messages {
			if answered == n {
				astrid.Logf(astrid.LogWarn, "served %d requests; %d more left unanswered", n, len(env.Messages)-i)
				break
			}
			if answer(m) {
				answered++
			}
		}
	}
	return strconv.AppendInt(nil, answered, 10), nil
}

//go:wasmexport run
func run() int32 { return astrid.Export(serveForever) }

// serveForever answers requests until the host interrupts the call (it
// unloads the capsule): Recv then returns, and the next Recv, on a
// subscription the host has dropped, traps. The timeout keeps the capsule
// calling into the host regularly even when nobody pings.
func serveForever([]byte) ([]byte, error) {
	sub, err := astrid.Subscribe(requestTopic)
	if err != nil {
		return nil, err
	}
	astrid.Logf(astrid.LogInfo, "answering requests on %s", requestTopic)
	astrid.SignalReady()
	for {
		env, err := sub.Recv(wait)
		if err != nil {
			return nil, err
		}
		reportLag(env)
		for _, m := range env.Messages {
			answer(m)
		}
	}
}

// answer publishes the reply to request m and reports whether it did: a
// request that is not {"n":k} is logged and skipped.
func answer(m astrid.Message) bool {
	var req pingMessage
	if err := m.Decode(&req); err != nil || req.N == nil {
		astrid.Logf(astrid.LogWarn, "skipping a request that is not {\"n\":k}: %s", m.Data())
		return false
	}
	if err := astrid.Publish(replyTopic, req); err != nil {
		astrid.Logf(astrid.LogError, "replying to request %d: %v", *req.N, err)
		return false
	}
	astrid.Logf(astrid.LogDebug, "answered request %d (seq %d)", *req.N, m.Seq)
	return true
}

// reportLag logs the requests the host discarded because they came faster
// than pong read them.
func reportLag(env *astrid.Envelope) {
	if env.Lagged > 0 {
		astrid.Logf(astrid.LogWarn, "%d requests were discarded unanswered: the queue was full", env.Lagged)
	}
}

// parseCount parses the input as a positive count, def if it is empty.
func parseCount(input []byte, def int64) (int64, error) {
	s := strings.TrimSpace(string(input))
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("input %q is not a positive integer", s)
	}
	return n, nil
}
