package bus

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus/topics"
)

// Default queue limits of a subscription (docs/architecture.md#the-bus).
const (
	DefaultQueueMessages = 1024
	DefaultQueueBytes    = 8 << 20
)

// Options configure a Bus. The zero value means the defaults.
type Options struct {
	// QueueMessages is the most messages a subscription's queue holds;
	// <= 0 means DefaultQueueMessages.
	QueueMessages int
	// QueueBytes is the most payload bytes a subscription's queue holds;
	// <= 0 means DefaultQueueBytes.
	QueueBytes int
	// Observer, if set, is called once for every message published, with its
	// seq and timestamp set, after it has been queued for the subscribers: in
	// the publisher's goroutine, outside the bus's locks (so it may publish),
	// and in publish order for each publisher. It must not block and must not
	// modify the message. The host's interceptor dispatcher is the observer:
	// it sees every message, which no bounded subscription queue guarantees.
	Observer func(*Message)
}

// Bus is the in-process topic bus: publishers hand it messages, and it
// appends each one to the queue of every subscription whose pattern matches
// the topic (Match). It never blocks on a subscriber. All methods are safe
// for concurrent use.
//
// Locks: mu (a RWMutex) guards the subscription index; Publish holds it for
// reading while it appends to queues, Subscribe and Close for writing. Each
// subscription's queue has its own small mutex, always taken after mu.
type Bus struct {
	opts   Options
	seq    atomic.Uint64 // last seq assigned
	totals totals        // cumulative counts (Totals)

	mu    sync.RWMutex
	index index
	count int // open subscriptions, indexed or not

	// shared serves the link to other hosts (link.go).
	shared shared
}

// New returns an empty bus with the given options.
func New(opts Options) *Bus {
	if opts.QueueMessages <= 0 {
		opts.QueueMessages = DefaultQueueMessages
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	return &Bus{opts: opts}
}

// stamp gives m the seq and, if it has none, the timestamp now.
func stamp(m *Message, seq uint64, now func() time.Time) {
	m.Seq = seq
	if m.Timestamp.IsZero() {
		m.Timestamp = now()
	}
}

// nowUTC is the timestamp of published messages.
func nowUTC() time.Time { return time.Now().UTC() }

// Publish assigns m the next global seq (the first is 1) and, if
// m.Timestamp is zero, the current time; appends it to the queue of every
// subscription whose pattern matches m.Topic; and returns the seq. A topic
// that matches nothing (no subscriber, an empty segment, more than topics.MaxDepth
// segments) still takes a seq. Publish never blocks on subscribers: a full
// queue evicts its oldest message, counted as lagged. Messages published by
// one goroutine reach each subscriber in publish order; messages of
// concurrent publishers are not ordered among themselves, so their seqs can
// reach a subscriber out of order.
//
// Publish validates nothing: the host checks guest topics and payloads
// (package bus/guard, PayloadFromGuest) before calling it.
func (b *Bus) Publish(m Message) uint64 {
	stamp(&m, b.seq.Add(1), nowUTC)
	b.totals.published.Add(1)
	var segBuf [topics.MaxDepth]string
	segs, ok := topics.Split(m.Topic, segBuf[:0])
	if !ok {
		if b.opts.Observer != nil {
			b.opts.Observer(&m)
		}
		return m.Seq
	}
	var subBuf [8]*Subscription
	b.mu.RLock()
	for _, s := range b.index.collect(segs, subBuf[:0]) {
		s.push(&m)
	}
	b.mu.RUnlock()
	if b.opts.Observer != nil {
		b.opts.Observer(&m)
	}
	return m.Seq
}

// PublishBatch publishes ms in order, as consecutive calls of Publish by one
// goroutine would, with consecutive seqs; it returns the first (0 when ms is
// empty). It takes the index lock once, matches the index once per run of
// consecutive messages to one topic, and pushes each run into each matching
// subscription under one lock, which is what makes pipelined guest
// publishes cheap. Messages without a timestamp all get the same one. The
// seqs are written into ms.
func (b *Bus) PublishBatch(ms []Message) (firstSeq uint64) {
	if len(ms) == 0 {
		return 0
	}
	first := b.seq.Add(uint64(len(ms))) - uint64(len(ms)) + 1
	b.totals.published.Add(uint64(len(ms)))
	now := time.Time{}
	clock := func() time.Time {
		if now.IsZero() {
			now = nowUTC()
		}
		return now
	}
	for i := range ms {
		stamp(&ms[i], first+uint64(i), clock)
	}

	// A subscription gets a run's messages in order, and the runs in order:
	// each subscriber sees the batch in publish order.
	var segBuf [topics.MaxDepth]string
	var subBuf [8]*Subscription
	b.mu.RLock()
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].Topic == ms[i].Topic {
			j++
		}
		if segs, ok := topics.Split(ms[i].Topic, segBuf[:0]); ok {
			for _, s := range b.index.collect(segs, subBuf[:0]) {
				s.pushRun(ms[i:j])
			}
		}
		i = j
	}
	b.mu.RUnlock()
	if b.opts.Observer != nil {
		for i := range ms {
			b.opts.Observer(&ms[i])
		}
	}
	return first
}

// Subscribe adds a subscription to pattern and returns it; messages
// published from now on whose topic pattern matches are queued for it. The
// caller (the host) has already validated and authorised pattern
// (package bus/guard); any string is accepted without panic, and
// one that can match nothing, such as "a..b", makes a subscription that
// never receives anything. Close the subscription when done with it.
func (b *Bus) Subscribe(pattern string) *Subscription {
	s := &Subscription{
		bus:      b,
		pattern:  pattern,
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		maxMsgs:  b.opts.QueueMessages,
		maxBytes: b.opts.QueueBytes,
	}
	if segs, ok := topics.SplitPattern(pattern); ok && indexable(segs) {
		s.segs = segs
	}
	b.mu.Lock()
	if s.segs != nil {
		b.index.insert(s.segs, s)
	}
	b.count++
	b.mu.Unlock()
	return s
}

// indexable reports whether a pattern with these segments can match a topic
// of at most MaxDepth segments; the others stay out of the index.
func indexable(segs []string) bool {
	return len(segs) <= topics.MaxDepth
}

// remove takes s out of the index; Subscription.Close calls it once.
func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	if s.segs != nil {
		b.index.remove(s.segs, s)
	}
	b.count--
	b.mu.Unlock()
}

// Subscriptions returns the number of subscriptions that are not closed.
func (b *Bus) Subscriptions() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.count
}
