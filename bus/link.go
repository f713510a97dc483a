package bus

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/astrid-go/astrid/bus/topics"
)

// Link carries a bus's shared traffic to the buses of other hosts (package bus/cluster is the
// NATS one; docs/architecture.md#the-bus-across-hosts). The bus calls it; it calls the bus back
// with DeliverRemote and AddLag for what other hosts publish.
//
// Only guest traffic is shared: messages published with PublishShared and subscriptions made
// with SubscribeShared. The host's own events and internal subscriptions (Publish, Subscribe)
// stay on this host.
type Link interface {
	// Forward sends a message published on this host to the other hosts, before it is delivered
	// locally. A non-nil error refuses the message: it is then not delivered on this host either,
	// and the publisher gets the error. Forward is called in publish order for each publisher,
	// and concurrently for different publishers.
	Forward(m *Message) error
	// Interest tells the link that the first shared subscription to pattern begins (add), or that
	// the last one ended (!add). An error on add refuses the subscription. Calls for one bus are
	// serialised.
	Interest(pattern string, add bool) error
}

// shared is the part of a Bus that serves a Link: the shared subscriptions by pattern and the
// count of publishes the link refused.
type shared struct {
	interestMu sync.Mutex // serialises Interest calls with the changes of byPattern they follow
	link       atomic.Pointer[linkBox]
	// byPattern holds the open shared subscriptions by their exact pattern (guarded by Bus.mu).
	byPattern map[string]map[*Subscription]struct{}
	refused   atomic.Uint64
}

// linkBox lets an interface live in an atomic.Pointer.
type linkBox struct{ l Link }

// SetLink connects the bus to other hosts through l (nil disconnects it). Set it before the
// first shared subscription: subscriptions made before are not announced to l.
func (b *Bus) SetLink(l Link) {
	if l == nil {
		b.shared.link.Store(nil)
		return
	}
	b.shared.link.Store(&linkBox{l})
}

func (b *Bus) getLink() Link {
	if p := b.shared.link.Load(); p != nil {
		return p.l
	}
	return nil
}

// PublishShared publishes a guest's messages, in order, as PublishBatch does, after handing each
// to the link (if any) for the other hosts. When the link refuses a message, that message and
// the ones after it are neither forwarded nor delivered here: they are counted as refused
// (Refused) and the error, naming why, is returned with the number of messages published.
func (b *Bus) PublishShared(ms []Message) (published int, err error) {
	l := b.getLink()
	if l == nil {
		b.PublishBatch(ms)
		return len(ms), nil
	}
	now := nowUTC()
	for i := range ms {
		if ms[i].Timestamp.IsZero() {
			ms[i].Timestamp = now
		}
		if ferr := l.Forward(&ms[i]); ferr != nil {
			b.shared.refused.Add(uint64(len(ms) - i))
			err = fmt.Errorf("the bus to other hosts refused the message (and %d after it): %w", len(ms)-i-1, ferr)
			ms = ms[:i]
			break
		}
	}
	b.PublishBatch(ms)
	return len(ms), err
}

// Refused is the number of messages PublishShared refused because the link could not take them.
func (b *Bus) Refused() uint64 { return b.shared.refused.Load() }

// SubscribeShared is Subscribe for a guest: the subscription also receives the messages other
// hosts publish on topics pattern matches (DeliverRemote). The first shared subscription to a
// pattern tells the link (Link.Interest); if the link refuses it, so is the subscription, with
// the link's error.
func (b *Bus) SubscribeShared(pattern string) (*Subscription, error) {
	s := b.Subscribe(pattern)
	if err := b.share(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// share registers s as a shared subscription and, when it is the first of its pattern, tells
// the link; it undoes the registration when the link refuses.
func (b *Bus) share(s *Subscription) error {
	pattern := s.pattern
	b.shared.interestMu.Lock()
	defer b.shared.interestMu.Unlock()
	b.mu.Lock()
	if b.shared.byPattern == nil {
		b.shared.byPattern = make(map[string]map[*Subscription]struct{})
	}
	set := b.shared.byPattern[pattern]
	first := set == nil
	if first {
		set = make(map[*Subscription]struct{})
		b.shared.byPattern[pattern] = set
	}
	set[s] = struct{}{}
	s.shared = true
	b.mu.Unlock()
	if l := b.getLink(); l != nil && first {
		if err := l.Interest(pattern, true); err != nil {
			b.mu.Lock()
			delete(b.shared.byPattern, pattern)
			s.shared = false
			b.mu.Unlock()
			return err
		}
	}
	return nil
}

// unshare takes a closing shared subscription out of byPattern and tells the link when it was
// the last of its pattern.
func (b *Bus) unshare(s *Subscription) {
	b.shared.interestMu.Lock()
	defer b.shared.interestMu.Unlock()
	b.mu.Lock()
	set := b.shared.byPattern[s.pattern]
	_, ok := set[s]
	delete(set, s)
	last := ok && len(set) == 0
	if last {
		delete(b.shared.byPattern, s.pattern)
	}
	b.mu.Unlock()
	if l := b.getLink(); l != nil && last {
		l.Interest(s.pattern, false) // removing interest cannot be refused
	}
}

// SharedPatterns returns the patterns that have at least one shared subscription.
func (b *Bus) SharedPatterns() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ps := make([]string, 0, len(b.shared.byPattern))
	for p := range b.shared.byPattern {
		ps = append(ps, p)
	}
	return ps
}

// DeliverRemote queues a message another host published for the shared subscriptions whose
// pattern is exactly pattern and matches m.Topic by this bus's own matcher (topics.Match): the
// link says which subscription a message arrived for, and the bus never trusts the other side's
// matching. m gets this bus's next seq (the receiving host's order); its timestamp, source_id and
// principal are the origin's. The observer (interceptors) is not called: interceptors run for
// messages published on their own host only. It returns the number of subscriptions that got m.
func (b *Bus) DeliverRemote(pattern string, m Message) int {
	if !topics.Match(pattern, m.Topic) {
		return 0
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	set := b.shared.byPattern[pattern]
	if len(set) == 0 {
		return 0
	}
	stamp(&m, b.seq.Add(1), nowUTC)
	for s := range set {
		s.push(&m)
	}
	return len(set)
}

// AddLag counts n messages that other hosts published for pattern and that never reached this
// host (the link saw the gap) as matched and lagged on every shared subscription of pattern, so
// that Delivered + Lagged + Queued == Matched still holds and the guest's next envelope reports
// them.
func (b *Bus) AddLag(pattern string, n uint64) {
	if n == 0 {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.shared.byPattern[pattern] {
		s.addLag(n)
	}
}
