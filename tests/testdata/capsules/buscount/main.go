//go:build wasip1

// Command buscount is a test-only run-loop capsule for the bus across hosts. Its run export
// subscribes to the pattern of its "sub" configuration (default "test.v1.*") and to
// test.v1.cmd.NAME.* and test.v1.wake.NAME (NAME is its "name" configuration), then counts every other
// message it receives and obeys commands:
//
//   - test.v1.cmd.NAME.send {"n":N,"topic":T,"then":W,"window":K}: publishes {"i":1..N,"from":NAME}
//     on T, then, if W is set, {} on W. With a window, it waits after every K messages until a
//     receiver acknowledges them (flow control: a receiver acknowledges each envelope with
//     {"i":last} on test.v1.ack.SENDER);
//   - test.v1.cmd.NAME.report {}: publishes its counts on test.v1.report.NAME:
//     {"delivered":d,"lagged":l,"order_errors":e,"last":i,"topics":{topic:count}};
//   - test.v1.cmd.NAME.hold {}: publishes {} on test.v1.report.NAME.held, then stops reading its
//     subscription until a message arrives on test.v1.wake.NAME, so that its queue overflows.
//
// A message counts in order when its "i" is greater than the last one's from the same sender on
// the same topic.
package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

type counts struct {
	Delivered   uint64         `json:"delivered"`
	Lagged      uint64         `json:"lagged"`
	OrderErrors uint64         `json:"order_errors"`
	Last        int64          `json:"last"`
	Topics      map[string]int `json:"topics"`
}

type command struct {
	N      int    `json:"n"`
	Topic  string `json:"topic"`
	Then   string `json:"then"`
	Window int    `json:"window"`
}

//go:wasmexport run
func run() int32 {
	return astrid.Export(func([]byte) ([]byte, error) {
		name := astrid.GetConfig("name")
		if name == "" {
			name = "buscount"
		}
		pattern, ok := astrid.Config("sub")
		if !ok {
			pattern = "test.v1.*"
		}
		data, err := astrid.Subscribe(pattern)
		if err != nil {
			return nil, err
		}
		cmds, err := astrid.Subscribe("test.v1.cmd." + name + ".*")
		if err != nil {
			return nil, err
		}
		wake, err := astrid.Subscribe("test.v1.wake." + name)
		if err != nil {
			return nil, err
		}
		acks, err := astrid.Subscribe("test.v1.ack." + name)
		if err != nil {
			return nil, err
		}
		astrid.SignalReady()
		c := counts{Topics: map[string]int{}}
		last := map[string]int64{}
		cmdPrefix := "test.v1.cmd." + name + "."
		for {
			// Commands first, then the data; a command is also seen by data when its pattern
			// covers the command topics, and is not counted there.
			env, err := cmds.Poll()
			if err != nil {
				return nil, err
			}
			for _, m := range env.Messages {
				if err := obey(name, strings.TrimPrefix(m.Topic, cmdPrefix), m, &c, wake, acks); err != nil {
					return nil, err
				}
			}
			env, err = data.Recv(20 * time.Millisecond)
			if err != nil {
				return nil, err
			}
			c.Lagged += env.Lagged
			type ack struct{ from, topic string }
			ackTo := map[ack]int64{}
			for _, m := range env.Messages {
				if !strings.HasPrefix(m.Topic, "test.v1.data.") && !strings.HasPrefix(m.Topic, "test.v1.slow.") {
					continue
				}
				var p struct {
					I    int64  `json:"i"`
					From string `json:"from"`
				}
				_ = json.Unmarshal(m.Data(), &p)
				key := p.From + " " + m.Topic
				if p.I <= last[key] {
					c.OrderErrors++
				}
				last[key] = p.I
				c.Last = p.I
				c.Delivered++
				c.Topics[m.Topic]++
				ackTo[ack{p.From, m.Topic}] = p.I
			}
			for a, i := range ackTo {
				if err := astrid.PublishJSON("test.v1.ack."+a.from, fmt.Appendf(nil, `{"i":%d,"topic":%q}`, i, a.topic)); err != nil {
					return nil, err
				}
			}
		}
	})
}

func obey(name, verb string, m astrid.Message, c *counts, wake, acks *astrid.Subscription) error {
	switch verb {
	case "send":
		var cmd command
		if err := json.Unmarshal(m.Data(), &cmd); err != nil {
			return err
		}
		acked := 0
		for i := 1; i <= cmd.N; i++ {
			// A publish the host refuses (the bus to other hosts could not take it) fails the
			// guest's next IPC call with a trap, as any IPC error: the run loop ends there.
			if err := astrid.PublishJSON(cmd.Topic, fmt.Appendf(nil, `{"i":%d,"from":%q}`, i, name)); err != nil {
				return err
			}
			for cmd.Window > 0 && (i-acked >= cmd.Window || i == cmd.N) && acked < i {
				env, err := acks.Recv(time.Minute)
				if err != nil {
					return err
				}
				if len(env.Messages) == 0 {
					return fmt.Errorf("no acknowledgement of message %d within a minute", acked+1)
				}
				for _, a := range env.Messages {
					var p struct {
						I     int
						Topic string
					}
					if json.Unmarshal(a.Data(), &p) == nil && p.Topic == cmd.Topic && p.I > acked {
						acked = p.I
					}
				}
			}
		}
		if cmd.Then != "" {
			return astrid.PublishJSON(cmd.Then, []byte(`{}`))
		}
	case "report":
		return astrid.Publish("test.v1.report."+name, c)
	case "hold":
		if err := astrid.PublishJSON("test.v1.report."+name+".held", []byte(`{}`)); err != nil {
			return err
		}
		for {
			env, err := wake.Recv(time.Minute)
			if err != nil {
				return err
			}
			if len(env.Messages) > 0 {
				return nil
			}
		}
	}
	return nil
}
