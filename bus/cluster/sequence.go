package cluster

import (
	"github.com/astrid-go/astrid/bus/topics"
)

// Exact loss counting across hosts (docs/architecture.md#the-bus-across-hosts). A publishing
// host keeps, for every pattern other hosts subscribe to, a count of the messages it sent that
// the pattern matches, and stamps each message with the (pattern, epoch, count) marks of the
// patterns it matches. A receiving host keeps, per origin and per local pattern, the last count
// it saw; a jump of k counts means k messages for that pattern never arrived (NATS dropped them
// for a slow consumer, a server died with them, the receiver was disconnected), and they are
// added to the lagged count of the pattern's local subscriptions. Publishers also send their
// marks on their own (hwm), so that a lost tail is counted too.

// maxRemotePatterns bounds the distinct patterns a publisher counts for all other hosts
// together; past it the publisher forwards every message, counting none of the extra patterns.
const maxRemotePatterns = 4 * MaxPatterns

// counter is a publisher's count for one remote pattern.
type counter struct {
	refs int    // hosts that subscribe to the pattern
	gen  uint64 // epoch: set when the counter is created, so a re-created one starts afresh
	n    uint64 // messages sent that the pattern matches
}

// outbox is a publisher's view of the other hosts' interest and its counts. Not safe for
// concurrent use; Link.pubMu guards it.
type outbox struct {
	hosts    map[string]map[string]struct{} // origin -> its patterns
	counters map[string]*counter
	gen      uint64
	// overflow is set when some host's patterns could not all be counted: every message is then
	// forwarded, so none is kept from a host for want of a counter.
	overflow bool
	dirty    bool // counts changed since the last hwm
}

func newOutbox() *outbox {
	return &outbox{hosts: map[string]map[string]struct{}{}, counters: map[string]*counter{}}
}

// update replaces origin's patterns with set (full) or changes them (add, del). Each pattern
// origin adds starts a new epoch of its counter at zero, of which origin is a member from the
// start. update returns the final marks of the epochs it ended (closing), which the caller must
// send before any further message so that the hosts already subscribed count their lost tail,
// and the new epochs' opening marks (zero), which it must send next, addressed to origin (hwm
// with For). known is false if the host is new and MaxHosts are known already.
func (o *outbox) update(origin string, full bool, set, add, del []string) (closing, opening []mark, known bool) {
	ps, known := o.hosts[origin]
	if !known {
		if len(o.hosts) >= MaxHosts {
			o.overflow = true
			return nil, nil, false
		}
		ps = map[string]struct{}{}
		o.hosts[origin] = ps
	}
	if full {
		for p := range ps {
			if !contains(set, p) {
				o.unref(ps, p)
			}
		}
		add = set
	}
	for _, p := range del {
		if _, ok := ps[p]; ok {
			o.unref(ps, p)
		}
	}
	for _, p := range add {
		if _, ok := ps[p]; ok {
			continue
		}
		if _, ok := topics.PatternSubject(p); !ok {
			continue // matches nothing
		}
		if len(ps) >= MaxPatterns {
			o.overflow = true
			break
		}
		c := o.counters[p]
		switch {
		case c == nil && len(o.counters) >= maxRemotePatterns:
			o.overflow = true
			continue
		case c == nil:
			c = &counter{}
			o.counters[p] = c
		default:
			closing = append(closing, mark{Pattern: p, Gen: c.gen, N: c.n})
		}
		o.gen++
		c.gen, c.n = o.gen, 0
		opening = append(opening, mark{Pattern: p, Gen: c.gen})
		o.dirty = true
		c.refs++
		ps[p] = struct{}{}
	}
	return closing, opening, true
}

func contains(set []string, p string) bool {
	for _, s := range set {
		if s == p {
			return true
		}
	}
	return false
}

func (o *outbox) unref(ps map[string]struct{}, p string) {
	delete(ps, p)
	if c := o.counters[p]; c != nil {
		c.refs--
		if c.refs <= 0 {
			delete(o.counters, p)
		}
	}
}

// removeHost forgets origin's interest (it said bye).
func (o *outbox) removeHost(origin string) {
	ps := o.hosts[origin]
	for p := range ps {
		o.unref(ps, p)
	}
	delete(o.hosts, origin)
}

// match appends to dst the marks topic would get if sent now: each matching pattern's count
// plus one. Nothing changes until commit.
func (o *outbox) match(topic string, dst []mark) []mark {
	for p, c := range o.counters {
		if topics.Match(p, topic) {
			dst = append(dst, mark{Pattern: p, Gen: c.gen, N: c.n + 1})
		}
	}
	return dst
}

// commit records that a message with marks was sent.
func (o *outbox) commit(marks []mark) {
	for _, m := range marks {
		if c := o.counters[m.Pattern]; c != nil && c.gen == m.Gen {
			c.n = m.N
		}
	}
	if len(marks) > 0 {
		o.dirty = true
	}
}

// marks returns every count, for an hwm message.
func (o *outbox) marks() []mark {
	ms := make([]mark, 0, len(o.counters))
	for p, c := range o.counters {
		ms = append(ms, mark{Pattern: p, Gen: c.gen, N: c.n})
	}
	return ms
}

// marksOf returns the counts of the patterns origin subscribes to, for an hwm addressed to it.
func (o *outbox) marksOf(origin string) []mark {
	ps := o.hosts[origin]
	ms := make([]mark, 0, len(ps))
	for p := range ps {
		if c := o.counters[p]; c != nil {
			ms = append(ms, mark{Pattern: p, Gen: c.gen, N: c.n})
		}
	}
	return ms
}

// seen is the last count a receiver saw from one origin for one pattern.
type seen struct{ gen, n uint64 }

// origin is what a receiver knows of one publishing host.
type originState struct {
	marks map[string]*seen
	used  uint64 // inbox.clock when last heard from
}

// inbox is a receiver's sequence state. Not safe for concurrent use; the link's receive
// goroutine owns it (under Link.mu).
type inbox struct {
	origins map[string]*originState
	clock   uint64
}

func newInbox() *inbox { return &inbox{origins: map[string]*originState{}} }

// state returns origin's state, forgetting the least recently heard from origin when MaxHosts
// are known already.
func (in *inbox) state(origin string) *originState {
	in.clock++
	st := in.origins[origin]
	if st == nil {
		if len(in.origins) >= MaxHosts {
			var oldest string
			var min uint64 = ^uint64(0)
			for o, s := range in.origins {
				if s.used < min {
					oldest, min = o, s.used
				}
			}
			delete(in.origins, oldest)
		}
		st = &originState{marks: map[string]*seen{}}
		in.origins[origin] = st
	}
	st.used = in.clock
	return st
}

// advance moves origin's count for mk.Pattern to mk.N and returns how many counts were skipped
// (messages lost on the way) and whether mk is new: false for a count already seen or skipped,
// or an older epoch, whose message was counted before and must not be delivered now.
//
// A receiver counts from the first epoch it knows it is a member of: one that a mark addressed
// to it (member: the opening mark of its subscription, or the marks answering its hello) names.
// Before that, messages are delivered uncounted: they belong to epochs that began before the
// publisher knew of this subscription. Every later epoch of the pattern is one it is a member of
// too (an epoch ends only when another host joins, and the members stay).
func (in *inbox) advance(origin string, mk mark, isMessage, member bool) (fresh bool, lost uint64) {
	st := in.state(origin)
	s := st.marks[mk.Pattern]
	switch {
	case s == nil && !member:
		return true, 0
	case s == nil || mk.Gen > s.gen:
		s = &seen{gen: mk.Gen}
		st.marks[mk.Pattern] = s
	}
	if mk.Gen < s.gen || mk.N <= s.n {
		return false, 0
	}
	lost = mk.N - s.n
	if isMessage {
		lost-- // the message itself arrived
	}
	s.n = mk.N
	return true, lost
}

// forgetPattern drops every origin's count for pattern (its last local subscription ended).
func (in *inbox) forgetPattern(pattern string) {
	for _, st := range in.origins {
		delete(st.marks, pattern)
	}
}

// forgetOrigin drops what is known of origin (it said bye).
func (in *inbox) forgetOrigin(origin string) { delete(in.origins, origin) }
