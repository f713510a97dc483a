package bus

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/astrid-go/astrid/bus/internal/topictest"
	"github.com/astrid-go/astrid/bus/topics"
)

func TestIndexAgreesWithMatch(t *testing.T) {
	// Delivery through the bus's index reaches exactly the subscriptions
	// whose pattern Match says, with subscriptions coming and going.
	rapid.Check(t, func(t *rapid.T) {
		b := New(Options{})
		var subs []*Subscription
		for range rapid.IntRange(1, 12).Draw(t, "subscriptions") {
			subs = append(subs, b.Subscribe(topictest.Joined(t, topictest.PatternSeg, rapid.IntRange(0, 4).Draw(t, "depth"), "segment")))
		}
		closed := map[*Subscription]bool{}
		for _, s := range subs {
			if rapid.IntRange(0, 4).Draw(t, "close") == 0 {
				s.Close()
				closed[s] = true
			}
		}
		if got, want := b.Subscriptions(), len(subs)-len(closed); got != want {
			t.Fatalf("Subscriptions() = %d, want %d", got, want)
		}
		for range rapid.IntRange(1, 8).Draw(t, "publishes") {
			top := topictest.Joined(t, topictest.TopicSeg, rapid.IntRange(0, 5).Draw(t, "topic depth"), "topic segment")
			b.Publish(Message{Topic: top})
			for _, s := range subs {
				env := s.Poll(1 << 20)
				want := !closed[s] && topics.Match(s.Pattern(), top)
				if got := len(env.Messages) == 1; got != want || len(env.Messages) > 1 {
					t.Fatalf("publish %q: subscription %q got %d messages, Match = %v (closed %v)",
						top, s.Pattern(), len(env.Messages), want, closed[s])
				}
			}
		}
		for _, s := range subs {
			s.Close()
		}
		if !b.index.root.empty() {
			t.Fatalf("index not empty after every subscription closed: %+v", b.index.root)
		}
	})
}
