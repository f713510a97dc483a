package bus

import "github.com/astrid-go/astrid/bus/topics"

// index holds the subscriptions of a bus by pattern, as a trie over pattern
// segments in the manner of nats-server's sublist. A publish walks it with
// the topic's segments and visits only nodes whose path can still match, so
// its cost depends on the subscriptions that match (and the wildcards on the
// way), not on how many subscriptions exist.
//
// A pattern's segments lead from the root to a node: a literal segment
// through lit, a "*" that is not the pattern's last segment through wild.
// The pattern then ends at that node, in exact (the topic ends there too) or,
// when its last segment is "*", in tail (one or more topic segments remain).
// The walk is exactly the matcher's rules (package bus/topics), which the tests check
// against Match.
//
// The index is guarded by Bus.mu; it has no lock of its own.
type index struct {
	root node
}

// node is one position in the trie; see index.
type node struct {
	lit   map[string]*node // children by literal segment
	wild  *node            // child for a non-final "*" segment
	exact subSet           // patterns that end at this node
	tail  subSet           // patterns that end at this node followed by a final "*"
}

// subSet is a set of subscriptions. Maps keep insertion and removal O(1).
type subSet map[*Subscription]struct{}

// empty reports whether n can be pruned from its parent.
func (n *node) empty() bool {
	return len(n.lit) == 0 && n.wild == nil && len(n.exact) == 0 && len(n.tail) == 0
}

// insert adds s under the pattern segments segs (no empty segment).
func (x *index) insert(segs []string, s *Subscription) {
	n := &x.root
	last := len(segs) - 1
	for _, seg := range segs[:last] {
		n = n.child(seg)
	}
	if segs[last] == topics.Wildcard {
		n.tail = n.tail.add(s)
	} else {
		n = n.child(segs[last])
		n.exact = n.exact.add(s)
	}
}

// child returns the child of n for the pattern segment seg, creating it.
func (n *node) child(seg string) *node {
	if seg == topics.Wildcard {
		if n.wild == nil {
			n.wild = &node{}
		}
		return n.wild
	}
	c := n.lit[seg]
	if c == nil {
		if n.lit == nil {
			n.lit = make(map[string]*node)
		}
		c = &node{}
		n.lit[seg] = c
	}
	return c
}

// add inserts s into set, allocating the set on first use.
func (set subSet) add(s *Subscription) subSet {
	if set == nil {
		set = make(subSet, 1)
	}
	set[s] = struct{}{}
	return set
}

// remove deletes s, inserted under segs, and prunes the nodes it leaves
// empty so that a bus whose subscriptions come and go does not grow.
func (x *index) remove(segs []string, s *Subscription) {
	x.root.remove(segs, s)
}

// remove deletes s from the subtree of n and reports whether n is now empty.
func (n *node) remove(segs []string, s *Subscription) bool {
	switch {
	case len(segs) == 1 && segs[0] == topics.Wildcard:
		delete(n.tail, s)
	case len(segs) == 0:
		delete(n.exact, s)
	default:
		seg := segs[0]
		var c *node
		if seg == topics.Wildcard {
			c = n.wild
		} else {
			c = n.lit[seg]
		}
		if c != nil && c.remove(segs[1:], s) {
			if seg == topics.Wildcard {
				n.wild = nil
			} else {
				delete(n.lit, seg)
			}
		}
	}
	return n.empty()
}

// collect appends to out every subscription whose pattern matches the topic
// split into segs (no empty segment, at most topics.MaxDepth segments).
func (x *index) collect(segs []string, out []*Subscription) []*Subscription {
	return x.root.collect(segs, out)
}

// collect appends the subscriptions of n's subtree that match the rest of a
// topic's segments, segs. Each subscription sits at one node, so none is appended twice.
func (n *node) collect(segs []string, out []*Subscription) []*Subscription {
	if len(segs) == 0 {
		for s := range n.exact {
			out = append(out, s)
		}
		return out
	}
	for s := range n.tail {
		out = append(out, s)
	}
	if c := n.lit[segs[0]]; c != nil {
		out = c.collect(segs[1:], out)
	}
	if n.wild != nil {
		out = n.wild.collect(segs[1:], out)
	}
	return out
}
