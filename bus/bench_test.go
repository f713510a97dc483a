package bus

import (
	"fmt"
	"testing"
	"time"
)

// publishBaseline is the ns/op of BenchmarkPublish/subs=0 in this run, the
// baseline the subs=10000 case reports its ratio against.
var publishBaseline float64

// BenchmarkPublish measures Publish to a bus with no subscriptions and to
// one with 10 000 subscriptions that do not match the topic: "shared" mixes
// literal, wildcard and trailing-wildcard patterns, half of them on the
// topic's path (so the walk does a few more map lookups), "disjoint" has
// only patterns off its path. Scanning 10 000 patterns would cost some
// 10 000 times more; with the index both cost about the same as no
// subscriptions, and report the ratio as x-vs-0-subs.
func BenchmarkPublish(b *testing.B) {
	p, _ := CustomPayload("hello")
	for _, c := range []struct {
		name string
		n    int
		mod  int
	}{{"subs=0", 0, 4}, {"subs=10000-shared", 10_000, 4}, {"subs=10000-disjoint", 10_000, 2}} {
		n := c.n
		b.Run(c.name, func(b *testing.B) {
			bus := New(Options{})
			for i := range n {
				var pattern string
				switch i % c.mod {
				case 0:
					pattern = fmt.Sprintf("svc%d.v1.event", i)
				case 1:
					pattern = fmt.Sprintf("svc%d.v1.*", i)
				case 2:
					pattern = fmt.Sprintf("user.v1.prompt%d", i) // shares a prefix with the topic
				default:
					pattern = fmt.Sprintf("*.v1.x%d.*", i) // a wildcard on the topic's path
				}
				defer bus.Subscribe(pattern).Close()
			}
			m := Message{Topic: "user.v1.prompt", Payload: p}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				bus.Publish(m)
			}
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
			if n == 0 {
				publishBaseline = ns
			} else if publishBaseline > 0 {
				b.ReportMetric(ns/publishBaseline, "x-vs-0-subs")
			}
		})
	}
}

// BenchmarkPublishDeliver measures 256-byte messages from one publisher to
// one subscriber that drains with Poll every 64 messages (the path of a
// pipelined guest publish and a guest poll), reported as msgs/s.
func BenchmarkPublishDeliver(b *testing.B) {
	p := payload(256)
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			bus := New(Options{})
			s := bus.Subscribe("bench.v1.*")
			defer s.Close()
			ms := make([]Message, batch)
			b.ReportAllocs()
			b.SetBytes(256)
			b.ResetTimer()
			start := time.Now()
			delivered := 0
			for i := 0; i < b.N; i += batch {
				if batch == 1 {
					bus.Publish(Message{Topic: "bench.v1.data", Payload: p})
				} else {
					for j := range ms {
						ms[j] = Message{Topic: "bench.v1.data", Payload: p}
					}
					bus.PublishBatch(ms)
				}
				if (i+batch)%64 == 0 {
					delivered += len(s.Poll(10 << 20).Messages)
				}
			}
			delivered += len(s.Poll(10 << 20).Messages)
			b.ReportMetric(float64(delivered)/time.Since(start).Seconds(), "msgs/s")
			if st := s.Stats(); st.Lagged != 0 {
				b.Fatalf("lagged %d", st.Lagged)
			}
		})
	}
}
