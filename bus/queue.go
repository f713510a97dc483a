package bus

// queue is a subscription's FIFO of messages: a ring buffer that grows by
// doubling up to its message limit, with the payload bytes it holds counted
// so that the byte limit can be enforced on push. It is not safe for
// concurrent use; Subscription.mu guards it.
type queue struct {
	buf   []Message // ring storage; len(buf) is the capacity
	head  int       // index in buf of the oldest message
	n     int       // messages queued
	bytes int       // sum of len(Payload) over the queued messages
}

// minQueueCap is the capacity of a queue's first allocation. Queues start
// small because a bus may hold thousands of mostly idle subscriptions.
const minQueueCap = 8

// maxIdleQueueCap is the largest ring an emptied queue keeps whatever the traffic (see drained).
const maxIdleQueueCap = 256

// keepRingFactor: a drain that empties the queue keeps a ring larger than maxIdleQueueCap only
// while the drain took more than 1/keepRingFactor of it.
const keepRingFactor = 4

// size is the number of bytes a message counts for, in queues and in
// envelope budgets: the length of its tagged payload JSON (upstream counts
// the same serialisation).
func size(m *Message) int { return len(m.Payload) }

// at returns the i-th oldest queued message.
func (q *queue) at(i int) *Message {
	return &q.buf[(q.head+i)%len(q.buf)]
}

// push appends m, growing the ring as needed up to maxLen messages; the
// caller makes room first (a full ring at maxLen is a caller bug).
func (q *queue) push(m *Message, maxLen int) {
	if q.n == len(q.buf) {
		c := max(minQueueCap, 2*len(q.buf))
		c = min(c, max(maxLen, q.n+1))
		buf := make([]Message, c)
		for i := range q.n {
			buf[i] = *q.at(i)
		}
		q.buf, q.head = buf, 0
	}
	*q.at(q.n) = *m
	q.n++
	q.bytes += size(m)
}

// pop removes the oldest message and returns it. The slot is cleared so the
// payload it held can be collected.
func (q *queue) pop() Message {
	slot := q.at(0)
	m := *slot
	*slot = Message{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.bytes -= size(&m)
	if q.n == 0 {
		q.head = 0
	}
	return m
}

// drained is told that a drain took k messages and left the queue empty. It gives back the ring
// of a burst that has passed, so that an idle subscription stays small, but keeps it while the
// drains take a good part of it: a subscriber that keeps up with steady traffic would otherwise
// regrow its ring from minQueueCap (allocating, clearing and copying each size) after every
// drain.
func (q *queue) drained(k int) {
	if q.n == 0 && len(q.buf) > maxIdleQueueCap && len(q.buf) > keepRingFactor*k {
		q.buf = nil
	}
}
