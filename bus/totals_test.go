package bus

import "testing"

// TestTotals checks that the bus's cumulative counts add up what every subscription saw, closed
// subscriptions included, and count messages nobody subscribed to as published.
func TestTotals(t *testing.T) {
	cases := []struct {
		name          string
		queue         int // QueueMessages
		publish       int // messages to a.b
		batch         int // more messages to a.b, in one PublishBatch
		unmatched     int // messages to x.y, which no subscription matches
		drain         bool
		closeEarly    bool // close the first subscription before the last publishes
		wantDelivered uint64
		wantLagged    uint64
	}{
		{name: "nothing subscribed", queue: 4, unmatched: 3},
		{name: "all delivered", queue: 8, publish: 3, batch: 2, drain: true, wantDelivered: 10},
		{name: "overflow lags", queue: 4, publish: 6, batch: 3, drain: true, wantDelivered: 8, wantLagged: 10},
		{name: "queued but not drained", queue: 8, publish: 3, wantLagged: 0},
		{name: "a closed subscription keeps its counts", queue: 2, publish: 5, drain: true, closeEarly: true,
			wantDelivered: 4, wantLagged: 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := New(Options{QueueMessages: tc.queue})
			s1, s2 := subscribe(t, b, "a.*"), subscribe(t, b, "a.b")
			for n := range tc.publish {
				b.Publish(numbered("a.b", n))
			}
			var ms []Message
			for n := range tc.batch {
				ms = append(ms, numbered("a.b", n))
			}
			b.PublishBatch(ms)
			for n := range tc.unmatched {
				b.Publish(numbered("x.y", n))
			}
			if tc.drain {
				s1.Poll(1 << 20)
				s2.Poll(1 << 20)
			}
			if tc.closeEarly {
				s1.Close()
				s2.Close()
			}
			want := Totals{Published: uint64(tc.publish + tc.batch + tc.unmatched), Delivered: tc.wantDelivered, Lagged: tc.wantLagged}
			if got := b.Totals(); got != want {
				t.Fatalf("Totals() = %+v, want %+v", got, want)
			}
			// The totals are the sum of the subscriptions' own counters.
			st1, st2 := s1.Stats(), s2.Stats()
			if d, l := st1.Delivered+st2.Delivered, st1.Lagged+st2.Lagged; d != want.Delivered || l != want.Lagged {
				t.Fatalf("the subscriptions delivered %d and lagged %d; the totals say %d and %d", d, l, want.Delivered, want.Lagged)
			}
		})
	}
}
