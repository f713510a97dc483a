package bus

import (
	"bytes"
	"context"
	"strings"
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

// TestQueueTakeAndFit checks the bulk drain against the one-message operations it replaces, on
// rings whose queued run wraps around the end or not: take(k) gives what k pops give, leaves the
// same queue (head, count, bytes), and clears the slots it took; fit counts what the loop of
// sizes counted.
func TestQueueTakeAndFit(t *testing.T) {
	msg := func(i int) Message {
		return Message{Topic: "t", Payload: []byte(strings.Repeat("x", 1+i%7)), Seq: uint64(i)}
	}
	for _, c := range []struct {
		name   string
		maxLen int // the ring's capacity once full
	}{{"power of two", 8}, {"not a power of two", 10}, {"one slot", 1}} {
		for head := range c.maxLen {
			for queued := 0; queued <= c.maxLen; queued++ {
				if queued == 0 && head != 0 {
					continue // an emptied queue starts again at 0
				}
				// A full-sized ring of maxLen slots, its oldest message at head.
				ring := func() queue {
					q := queue{buf: make([]Message, c.maxLen), head: head, n: queued}
					for i := range queued {
						*q.at(i) = msg(i)
						q.bytes += size(q.at(i))
					}
					return q
				}
				q, ref := ring(), ring()
				for _, maxBytes := range []int{0, 3, 10, 1 << 20} {
					want, total := 0, 0
					for want < ref.n {
						sz := size(ref.at(want))
						if want > 0 && total+sz > maxBytes {
							break
						}
						total += sz
						want++
					}
					if got := q.fit(maxBytes); got != want {
						t.Fatalf("%s head %d queued %d: fit(%d) = %d, want %d", c.name, head, queued, maxBytes, got, want)
					}
				}
				k := queued / 2
				if queued == 1 {
					k = 1
				}
				taken := make([]Message, k)
				q.take(taken)
				for i := range k {
					if want := ref.pop(); taken[i].Seq != want.Seq || !bytes.Equal(taken[i].Payload, want.Payload) {
						t.Fatalf("%s head %d queued %d: took seq %d at %d, pop gives %d", c.name, head, queued, taken[i].Seq, i, want.Seq)
					}
				}
				if q.n != ref.n || q.head != ref.head || q.bytes != ref.bytes {
					t.Fatalf("%s head %d queued %d: after take(%d) n %d head %d bytes %d, pops leave %d %d %d", c.name, head, queued, k, q.n, q.head, q.bytes, ref.n, ref.head, ref.bytes)
				}
				for i := q.n; i < len(q.buf); i++ { // the free slots hold no payload
					if q.at(i).Payload != nil {
						t.Fatalf("%s head %d queued %d: a slot taken still holds its payload", c.name, head, queued)
					}
				}
			}
		}
	}
}
