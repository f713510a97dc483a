package bus

import (
	"context"
	"testing"
)

// TestQueueKeepsRingOfSteadyTraffic: a drain that empties the queue keeps a ring larger than
// maxIdleQueueCap while it took a good part of it (a subscriber keeping up with steady traffic),
// and gives it back after a burst (a drain that took few of it), never keeping more than
// maxIdleQueueCap otherwise.
func TestQueueKeepsRingOfSteadyTraffic(t *testing.T) {
	for _, c := range []struct {
		name       string
		queued     int // messages pushed, then all drained at once
		wantKept   bool
		wantAtMost int
	}{
		{"small queue", 100, true, maxIdleQueueCap},
		{"steady traffic, most of the ring", 900, true, 1024},
		{"just over a quarter of the ring", 1024/keepRingFactor + 1, true, 1024},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := New(Options{})
			s := b.Subscribe("a")
			defer s.Close()
			for range c.queued {
				b.Publish(Message{Topic: "a", Payload: []byte(`{}`)})
			}
			if env := s.Poll(1 << 30); len(env.Messages) != c.queued {
				t.Fatalf("drained %d messages, want %d", len(env.Messages), c.queued)
			}
			if kept := s.q.buf != nil; kept != c.wantKept || len(s.q.buf) > c.wantAtMost {
				t.Fatalf("ring of %d kept=%v, want kept=%v and at most %d", len(s.q.buf), kept, c.wantKept, c.wantAtMost)
			}
		})
	}
	t.Run("after a burst, a small drain gives the ring back", func(t *testing.T) {
		b := New(Options{})
		s := b.Subscribe("a")
		defer s.Close()
		for range 1000 {
			b.Publish(Message{Topic: "a", Payload: []byte(`{}`)})
		}
		s.Poll(1 << 30)
		b.Publish(Message{Topic: "a", Payload: []byte(`{}`)})
		if env := s.Poll(1 << 30); len(env.Messages) != 1 || s.q.buf != nil {
			t.Fatalf("drained %d, ring of %d kept; want 1 drained and the ring given back", len(env.Messages), len(s.q.buf))
		}
	})
}

// TestDrainInto: PollInto, TryRecvInto and RecvInto put the messages in the caller's array when
// it has room for them, in a new one otherwise, with the same envelope as Poll gives.
func TestDrainInto(t *testing.T) {
	drains := map[string]func(s *Subscription, into []Message) Envelope{
		"PollInto": func(s *Subscription, into []Message) Envelope { return s.PollInto(1<<20, into) },
		"TryRecvInto": func(s *Subscription, into []Message) Envelope {
			env, _ := s.TryRecvInto(1<<20, into)
			return env
		},
		"RecvInto": func(s *Subscription, into []Message) Envelope {
			env, _ := s.RecvInto(context.Background(), 1<<20, into)
			return env
		},
	}
	for name, drain := range drains {
		for _, room := range []int{2, 3, 10} {
			b := New(Options{})
			s := b.Subscribe("a")
			for i := range 3 {
				b.Publish(Message{Topic: "a", Payload: []byte(`{"n":` + string(rune('0'+i)) + `}`)})
			}
			into := make([]Message, 0, room)
			env := drain(s, into)
			s.Close()
			if len(env.Messages) != 3 || string(env.Messages[2].Payload) != `{"n":2}` || env.Messages[2].Seq != 3 {
				t.Fatalf("%s with room for %d: %+v", name, room, env.Messages)
			}
			if inInto := &env.Messages[0] == &into[:1][0]; inInto != (room >= 3) {
				t.Fatalf("%s with room for %d: messages in the caller's array = %v", name, room, inInto)
			}
		}
	}
}
