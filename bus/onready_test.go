package bus

import (
	"testing"
)

// TestOnReady: a function registered with OnReady is called once, on the goroutine that makes
// the subscription ready (a publish, or Close), after the queue's lock is let go (it can drain
// what was pushed); CancelOnReady takes it back before that; Ready reports what a Recv would
// find.
func TestOnReady(t *testing.T) {
	for _, c := range []struct {
		name   string
		cancel bool // take the function back before the event
		event  func(b *Bus, s *Subscription)
		calls  int
		ready  bool // Ready after the events (the second publish's message stays queued)
		got    int  // messages the function drained
	}{
		{"publish", false, func(b *Bus, _ *Subscription) { b.Publish(Message{Topic: "a.b", Payload: []byte(`1`)}) }, 1, true, 1},
		{"publish to another topic", false, func(b *Bus, _ *Subscription) { b.Publish(Message{Topic: "a.c", Payload: []byte(`1`)}) }, 0, false, 0},
		{"close", false, func(_ *Bus, s *Subscription) { s.Close() }, 1, true, 0},
		{"cancelled, then publish", true, func(b *Bus, _ *Subscription) { b.Publish(Message{Topic: "a.b", Payload: []byte(`1`)}) }, 0, true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := New(Options{})
			s := subscribe(t, b, "a.b")
			if s.Ready() {
				t.Fatal("ready before anything was published")
			}
			calls, got := 0, 0
			f := func() {
				calls++
				if env, ok := s.TryRecv(1 << 20); ok {
					got += len(env.Messages)
				}
			}
			s.OnReady(&f)
			if c.cancel && !s.CancelOnReady(&f) {
				t.Fatal("CancelOnReady: not registered")
			}
			c.event(b, s)
			c.event(b, s) // a second event finds nothing registered
			if calls != c.calls || got != c.got || s.Ready() != c.ready {
				t.Fatalf("called %d times, drained %d, Ready %v; want %d, %d, %v", calls, got, s.Ready(), c.calls, c.got, c.ready)
			}
			if registered := c.calls == 0 && !c.cancel; s.CancelOnReady(&f) != registered {
				t.Fatalf("CancelOnReady: %v, want %v (still registered)", !registered, registered)
			}
			s.Close()
		})
	}
}
