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

// at returns the i-th oldest queued message (0 <= i < len(q.buf)).
func (q *queue) at(i int) *Message {
	return &q.buf[q.wrap(q.head+i)]
}

// wrap maps an index of the doubled ring (0 <= j < 2*len(q.buf)) into q.buf: a comparison, not
// the division a % would cost on every push and drain.
func (q *queue) wrap(j int) int {
	if j >= len(q.buf) {
		j -= len(q.buf)
	}
	return j
}

// segments returns the queued messages, oldest first, as the at most two runs of q.buf they
// occupy.
func (q *queue) segments() (first, second []Message) {
	if q.n == 0 {
		return nil, nil
	}
	if end := q.head + q.n; end <= len(q.buf) {
		return q.buf[q.head:end], nil
	}
	return q.buf[q.head:], q.buf[:q.head+q.n-len(q.buf)]
}

// fit returns how many of the oldest messages a drain of maxBytes takes: as many as fit in
// maxBytes of payload, and always the first.
func (q *queue) fit(maxBytes int) int {
	n, total := 0, 0
	first, second := q.segments()
	for _, seg := range [2][]Message{first, second} {
		for i := range seg {
			sz := size(&seg[i])
			if n > 0 && total+sz > maxBytes {
				return n
			}
			total += sz
			n++
		}
	}
	return n
}

// take moves the len(dst) oldest messages (at most q.n) into dst, in order, and clears their
// slots so that the payloads they held can be collected: pop for a run, copied a run of the ring
// at a time.
func (q *queue) take(dst []Message) {
	k := len(dst)
	first, second := q.segments()
	for _, seg := range [2][]Message{first, second} {
		seg = seg[:min(len(seg), len(dst))]
		copy(dst, seg)
		for i := range seg {
			q.bytes -= size(&seg[i])
		}
		clear(seg)
		dst = dst[len(seg):]
	}
	q.head = q.wrap(q.head + k)
	q.n -= k
	if q.n == 0 {
		q.head = 0
	}
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
	q.head = q.wrap(q.head + 1)
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
