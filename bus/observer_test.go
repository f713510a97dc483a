package bus

import (
	"testing"
)

// TestObserver: the observer sees every published message once, stamped, in publish order (a
// topic nothing matches and a batch included), after subscribers have it, and may publish
// itself: it runs outside the bus's locks.
func TestObserver(t *testing.T) {
	var seen []Message
	var b *Bus
	b = New(Options{Observer: func(m *Message) {
		seen = append(seen, *m)
		if m.Topic == "a.echo" {
			b.Publish(Message{Topic: "a.echoed"}) // would deadlock under the bus's lock
		}
	}})
	sub := b.Subscribe("a.*")
	defer sub.Close()
	b.Publish(Message{Topic: "a.one"})
	b.Publish(Message{Topic: "a..bad"})
	b.PublishBatch([]Message{{Topic: "a.two"}, {Topic: "b.x"}, {Topic: "a.echo"}})
	want := []string{"a.one", "a..bad", "a.two", "b.x", "a.echo", "a.echoed"}
	if len(seen) != len(want) {
		t.Fatalf("observed %d messages, want %d: %+v", len(seen), len(want), seen)
	}
	for i, m := range seen {
		if m.Topic != want[i] || m.Seq != uint64(i+1) || m.Timestamp.IsZero() {
			t.Fatalf("message %d: %s seq %d at %v; want %s seq %d, stamped", i, m.Topic, m.Seq, m.Timestamp, want[i], i+1)
		}
	}
	if st := sub.Stats(); st.Matched != 4 {
		t.Fatalf("subscriber matched %d, want 4 (a.one, a.two, a.echo, a.echoed)", st.Matched)
	}
}
