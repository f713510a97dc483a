// Package bus is the central topic bus of astrid-host (docs/architecture.md#the-bus): topics
// and topic patterns, the one matcher used for both delivery and ACLs,
// subscriptions with bounded per-subscription queues, the IpcMessage JSON
// that guests see, and the per-capsule IPC rate limiter.
//
// # Topics
//
// A topic is a string of dot-separated segments, such as "user.v1.prompt".
// No segment may be empty: "", ".", ".a", "a." and "a..b" are not topics.
// Topics that guests publish, and patterns they subscribe to, are at most
// [MaxTopicBytes] bytes of UTF-8 and at most [MaxGuestSegments] segments
// ([CheckPublishTopic], [CheckSubscribePattern]). The host may publish deeper
// topics of its own, up to [MaxDepth] segments; a deeper topic matches
// nothing. There is no character set: a segment is any non-empty string
// without a dot, and a topic may even contain a literal "*" segment.
//
// # The matcher
//
// [Match] is the only matcher. Delivery to subscriptions, publish ACLs and
// (through [Covers]) subscribe ACLs all use it, so a capsule can never
// receive a topic that its ACL does not allow. Match(pattern, topic) is true
// iff all of these hold:
//
//  1. neither pattern nor topic has an empty segment;
//  2. topic has at most [MaxDepth] (20) segments;
//  3. if the pattern's LAST segment is "*": the topic has at least as many
//     segments as the pattern, and each segment of the pattern before the
//     last equals the topic's segment at the same position or is "*"; the
//     trailing "*" then matches the one or more segments that remain;
//  4. otherwise the pattern and the topic have the same number of segments,
//     and each segment of the pattern equals the topic's or is "*" (one
//     segment).
//
// So "a.*" matches "a.b" and "a.b.c" but not "a"; "a.*.c" matches "a.b.c"
// only; and "*" alone matches every topic. No other wildcard exists: "a*"
// is a literal segment.
//
// This differs from upstream astrid 0.5, which had two matchers: the
// "strict" one (equal segment counts, "*" always one segment) for ACLs, and
// the bus one (trailing ".*" one-or-more) for delivery. It also differs from
// upstream's bus matcher for a bare "*" pattern, which upstream treats as one
// segment only because its test is a suffix test for ".*"; here the rule is
// about the last segment, whatever the pattern's length.
//
// [Covers](acl, pattern) answers the subscribe-ACL question: it is true iff
// every topic that pattern matches is matched by acl. It compares the two
// patterns segment by segment (see its doc comment), never by enumerating
// topics.
//
// # Delivery
//
// A [Bus] keeps its subscriptions in an index over pattern segments (index.go),
// so a publish visits only the index nodes that can match its topic. Each
// [Subscription] has its own bounded queue; a full queue evicts its oldest
// message and counts it as lagged, exactly. Draining never discards. For
// every subscription, Delivered + Lagged + Queued == Matched at all times
// ([Subscription.Stats]).
package bus

// MaxDepth is the deepest topic, in segments, that can match anything. The
// host may publish topics of its own up to this depth; guests are held to
// MaxGuestSegments.
const MaxDepth = 20

// wildcard is the one wildcard segment.
const wildcard = "*"

// Match reports whether pattern matches topic. It is the one matcher of the
// bus, used for delivery and for ACLs; its rules are in the package
// documentation: segments split on '.'; a "*" segment matches exactly one
// segment, except as the pattern's last segment, where it matches one or
// more; an empty segment on either side, or a topic deeper than MaxDepth,
// never matches.
//
// Match does not allocate.
func Match(pattern, topic string) bool {
	var buf [MaxDepth]string
	t, ok := splitTopic(topic, buf[:0])
	if !ok {
		return false
	}
	return matchSegments(pattern, t)
}

// matchSegments matches pattern against a topic already split by splitTopic.
// It walks the pattern in place, without splitting it.
func matchSegments(pattern string, topic []string) bool {
	i := 0 // index into topic of the next segment to match
	for start := 0; ; {
		end := start
		for end < len(pattern) && pattern[end] != '.' {
			end++
		}
		seg := pattern[start:end]
		if seg == "" {
			return false // empty pattern segment (also the empty pattern)
		}
		last := end == len(pattern)
		if last && seg == wildcard {
			// Trailing "*": one or more remaining topic segments.
			return i < len(topic)
		}
		if i >= len(topic) || (seg != wildcard && seg != topic[i]) {
			return false
		}
		i++
		if last {
			return i == len(topic)
		}
		start = end + 1
	}
}

// splitTopic appends the dot-separated segments of topic to dst and returns
// them, or false if topic has an empty segment or more than MaxDepth
// segments. The segments are substrings of topic; nothing is allocated while
// dst has room.
func splitTopic(topic string, dst []string) ([]string, bool) {
	start := 0
	for i := 0; i <= len(topic); i++ {
		if i < len(topic) && topic[i] != '.' {
			continue
		}
		if i == start || len(dst) == MaxDepth {
			return dst, false
		}
		dst = append(dst, topic[start:i])
		start = i + 1
	}
	return dst, true
}

// splitPattern splits a pattern into its segments, or returns false if it
// has an empty segment. Unlike splitTopic it puts no limit on the depth.
func splitPattern(pattern string) ([]string, bool) {
	n := 1
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '.' {
			n++
		}
	}
	segs := make([]string, 0, n)
	start := 0
	for i := 0; i <= len(pattern); i++ {
		if i < len(pattern) && pattern[i] != '.' {
			continue
		}
		if i == start {
			return nil, false
		}
		segs = append(segs, pattern[start:i])
		start = i + 1
	}
	return segs, true
}

// Covers reports whether acl covers pattern: every topic that pattern can
// match is matched by acl. It is the subscribe-ACL check (docs/architecture.md#the-bus): a
// capsule may subscribe to pattern iff one of its ipc_subscribe entries
// covers it. So "foo.*" is NOT covered by "foo.bar" (it also matches
// "foo.baz"), while "registry.v1.*" covers "registry.v1.selection.callback"
// and "registry.v1.*.x".
//
// With A the segments of acl and P those of pattern, Covers is true iff
// neither has an empty segment and either
//
//   - acl does not end in "*": len(P) == len(A) and, at every position,
//     A[i] is "*" or A[i] == P[i] (so a "*" in P needs a "*" in A, and
//     pattern's last segment is a literal because acl's is); or
//   - acl ends in "*": len(P) >= len(A) and A[i] is "*" or A[i] == P[i]
//     for every position before acl's last; acl's trailing "*" takes the
//     one or more segments of P that are left, wildcards or not.
//
// Covers(p, p) is true for every pattern without empty segments.
func Covers(acl, pattern string) bool {
	a, ok := splitPattern(acl)
	if !ok {
		return false
	}
	p, ok := splitPattern(pattern)
	if !ok {
		return false
	}
	aTail := a[len(a)-1] == wildcard
	if aTail {
		if len(p) < len(a) {
			return false
		}
		a = a[:len(a)-1]
	} else if len(p) != len(a) {
		return false
	}
	for i, s := range a {
		if s != wildcard && s != p[i] {
			return false
		}
	}
	return true
}
