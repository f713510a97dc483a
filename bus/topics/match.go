package topics

// MaxDepth is the deepest topic, in segments, that can match anything. The
// host may publish topics of its own up to this depth; guests are held to
// MaxGuestSegments.
const MaxDepth = 20

// Wildcard is the one wildcard segment.
const Wildcard = "*"

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
	t, ok := Split(topic, buf[:0])
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
		if last && seg == Wildcard {
			// Trailing "*": one or more remaining topic segments.
			return i < len(topic)
		}
		if i >= len(topic) || (seg != Wildcard && seg != topic[i]) {
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
func Split(topic string, dst []string) ([]string, bool) {
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
func SplitPattern(pattern string) ([]string, bool) {
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
	a, ok := SplitPattern(acl)
	if !ok {
		return false
	}
	p, ok := SplitPattern(pattern)
	if !ok {
		return false
	}
	aTail := a[len(a)-1] == Wildcard
	if aTail {
		if len(p) < len(a) {
			return false
		}
		a = a[:len(a)-1]
	} else if len(p) != len(a) {
		return false
	}
	for i, s := range a {
		if s != Wildcard && s != p[i] {
			return false
		}
	}
	return true
}
