package bus

import "sync/atomic"

// Totals are a bus's cumulative message counts since it was made, over every subscription it
// ever had, closed ones included (a closed subscription's Stats are gone with it). They are
// what the host's metrics report (astrid_bus_events_*).
type Totals struct {
	// Published counts the messages published (Publish and PublishBatch), whether or not any
	// subscription matched them.
	Published uint64
	// Delivered counts the messages returned to subscribers by Poll and Recv.
	Delivered uint64
	// Lagged counts the messages evicted from full subscription queues, and the messages other
	// hosts published for a subscription that never reached this host (AddLag).
	Lagged uint64
	// Refused counts the messages PublishShared refused because the link to other hosts could
	// not take them (Refused).
	Refused uint64
}

// totals are a Bus's Totals, updated as messages are published, drained and evicted.
type totals struct {
	published, delivered, lagged atomic.Uint64
}

// Totals returns the bus's cumulative counts. The three are read one after the other, not as
// one snapshot.
func (b *Bus) Totals() Totals {
	return Totals{
		Published: b.totals.published.Load(),
		Delivered: b.totals.delivered.Load(),
		Lagged:    b.totals.lagged.Load(),
		Refused:   b.Refused(),
	}
}
