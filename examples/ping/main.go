//go:build wasip1

// Command ping is an example capsule of the astrid Go SDK: the asking half
// of a ping/pong pair that talk over IPC (see examples/pong). Its export:
//
//   - ping: subscribes to ping.v1.reply, publishes N requests {"n":1} …
//     {"n":N} on ping.v1.request (N is the input, a decimal integer from 1
//     to 1000; 3 if empty), then waits for the replies {"n":k}, at most 5 s
//     for each. It outputs one line "pong k" for each k from 1 to N, or fails
//     saying how many replies are missing.
//
// It subscribes before it publishes: a subscription receives only what is
// published after it is made, and pong may answer at once. pong must be
// serving (its run export, or serve called with N or more) for the replies
// to come. Replies carry only k, so two pings running at the same time see
// each other's replies. The manifest allows publishing on ping.v1.request
// and subscribing to ping.v1.reply.
//
// Build it from the repository root:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/ping/ping.wasm ./examples/ping
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
	// wait is how long ping waits for each reply.
	wait = 5 * time.Second
	// maxCount bounds N, well below the host's queue of 1024 messages per
	// subscription, so that no reply is discarded before ping reads it.
	maxCount = 1000
)

// pingMessage is both a request and its reply.
type pingMessage struct {
	N *int64 `json:"n"`
}

//go:wasmexport ping
func ping() int32 { return astrid.Export(pingN) }

func pingN(input []byte) ([]byte, error) {
	n, err := parseCount(input, 3)
	if err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	sub, err := astrid.Subscribe(replyTopic)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	for k := int64(1); k <= n; k++ {
		if err := astrid.Publish(requestTopic, pingMessage{N: &k}); err != nil {
			return nil, err
		}
	}
	astrid.Logf(astrid.LogDebug, "published %d requests on %s", n, requestTopic)

	got := make([]bool, n+1) // got[k]: the reply to request k has come
	replies := int64(0)
	for replies < n {
		env, err := sub.Recv(wait)
		if err != nil {
			return nil, err
		}
		if len(env.Messages) == 0 {
			break // no reply within wait
		}
		if env.Lagged > 0 {
			astrid.Logf(astrid.LogWarn, "%d replies were discarded: the queue was full", env.Lagged)
		}
		for _, m := range env.Messages {
			var reply pingMessage
			if err := m.Decode(&reply); err != nil || reply.N == nil {
				astrid.Logf(astrid.LogWarn, "ignoring a reply that is not {\"n\":k}: %s", m.Data())
				continue
			}
			k := *reply.N
			if k < 1 || k > n || got[k] {
				astrid.Logf(astrid.LogDebug, "ignoring reply %d: not one this call is waiting for", k)
				continue
			}
			got[k] = true
			replies++
		}
	}
	if missing := n - replies; missing > 0 {
		return nil, fmt.Errorf("ping: %d of %d replies missing after waiting %v (first missing: %d); is pong serving %s?",
			missing, n, wait, firstMissing(got), requestTopic)
	}
	var out []byte
	for k := int64(1); k <= n; k++ {
		out = fmt.Appendf(out, "pong %d\n", k)
	}
	return out, nil
}

// firstMissing returns the smallest k ≥ 1 whose reply has not come.
func firstMissing(got []bool) int {
	for k := 1; k < len(got); k++ {
		if !got[k] {
			return k
		}
	}
	return 0
}

// parseCount parses the input as a count from 1 to maxCount, def if it is
// empty.
func parseCount(input []byte, def int64) (int64, error) {
	s := strings.TrimSpace(string(input))
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > maxCount {
		return 0, fmt.Errorf("input %q is not an integer from 1 to %d", s, maxCount)
	}
	return n, nil
}
