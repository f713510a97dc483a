package topics

import (
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/astrid-go/astrid/bus/internal/topictest"
)

// naiveMatch is the reference definition of the matcher, written
// independently of Match: split both sides, refuse empty segments and topictest.Deep
// topics, then recurse over the segments.
func naiveMatch(pattern, topic string) bool {
	p := strings.Split(pattern, ".")
	t := strings.Split(topic, ".")
	if slices.Contains(p, "") || slices.Contains(t, "") || len(t) > MaxDepth {
		return false
	}
	return naiveSegments(p, t)
}

func naiveSegments(p, t []string) bool {
	switch {
	case len(p) == 0:
		return len(t) == 0
	case len(p) == 1 && p[0] == "*": // the pattern's last segment
		return len(t) >= 1
	case len(t) == 0:
		return false
	case p[0] == "*" || p[0] == t[0]:
		return naiveSegments(p[1:], t[1:])
	}
	return false
}

// anyDepth draws a segment count, mostly small, sometimes around MaxDepth.
func anyDepth(t *rapid.T, label string) int {
	return rapid.OneOf(rapid.IntRange(0, 6), rapid.IntRange(MaxDepth-2, MaxDepth+2)).Draw(t, label)
}

func TestMatchAgreesWithNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := topictest.Joined(t, topictest.PatternSeg, anyDepth(t, "pattern depth"), "pattern segment")
		top := topictest.Joined(t, topictest.TopicSeg, anyDepth(t, "topic depth"), "topic segment")
		if got, want := Match(p, top), naiveMatch(p, top); got != want {
			t.Fatalf("Match(%q, %q) = %v, naive = %v", p, top, got, want)
		}
	})
}

func TestMatchAgreesWithNaiveWhenPatternFitsTopic(t *testing.T) {
	// Random pairs rarely match; derive the topic from the pattern so that
	// they often do, with an occasional change to make them miss.
	rapid.Check(t, func(t *rapid.T) {
		p := topictest.Joined(t, topictest.ValidPatternSeg, rapid.IntRange(1, 6).Draw(t, "depth"), "pattern segment")
		top := instantiate(t, p)
		if rapid.IntRange(0, 3).Draw(t, "mutate") == 0 {
			segs := strings.Split(top, ".")
			segs[rapid.IntRange(0, len(segs)-1).Draw(t, "at")] = topictest.ValidTopicSeg.Draw(t, "new segment")
			top = strings.Join(segs, ".")
		}
		if got, want := Match(p, top), naiveMatch(p, top); got != want {
			t.Fatalf("Match(%q, %q) = %v, naive = %v", p, top, got, want)
		}
	})
}

// instantiate draws a topic that pattern p (valid) matches: each "*"
// becomes a literal, a trailing one becomes one to three segments.
func instantiate(t *rapid.T, p string) string {
	segs := strings.Split(p, ".")
	var out []string
	for i, s := range segs {
		switch {
		case s != "*":
			out = append(out, s)
		case i == len(segs)-1:
			for range rapid.IntRange(1, 3).Draw(t, "tail length") {
				out = append(out, topictest.ValidTopicSeg.Draw(t, "tail segment"))
			}
		default:
			out = append(out, topictest.ValidTopicSeg.Draw(t, "wildcard segment"))
		}
	}
	return strings.Join(out, ".")
}

// specialise draws a pattern that p (valid) covers some of the time: it may
// narrow a "*" to a literal and extend a trailing "*".
func specialise(t *rapid.T, p string) string {
	segs := strings.Split(p, ".")
	for i := range segs {
		if segs[i] == "*" && rapid.Bool().Draw(t, "narrow") {
			segs[i] = topictest.ValidPatternSeg.Draw(t, "narrowed")
		}
	}
	if rapid.Bool().Draw(t, "extend") {
		segs = append(segs, topictest.ValidPatternSeg.Draw(t, "extension"))
	}
	return strings.Join(segs, ".")
}

func TestCoversIsSound(t *testing.T) {
	// Covers(a, p) ⇒ every topic p matches is matched by a.
	rapid.Check(t, func(t *rapid.T) {
		a := topictest.Joined(t, topictest.ValidPatternSeg, rapid.IntRange(1, 5).Draw(t, "acl depth"), "acl segment")
		var p string
		if rapid.Bool().Draw(t, "derive") {
			p = specialise(t, a)
		} else {
			p = topictest.Joined(t, topictest.ValidPatternSeg, rapid.IntRange(1, 5).Draw(t, "pattern depth"), "pattern segment")
		}
		if !Covers(a, a) || !Covers(p, p) {
			t.Fatalf("Covers is not reflexive on %q or %q", a, p)
		}
		if !Covers(a, p) {
			return
		}
		for range 8 {
			top := instantiate(t, p)
			if rand := topictest.Joined(t, topictest.ValidTopicSeg, rapid.IntRange(1, 7).Draw(t, "topic depth"), "topic segment"); Match(p, rand) {
				top = rand
			}
			if !Match(p, top) {
				t.Fatalf("instantiate(%q) = %q does not match", p, top)
			}
			if !Match(a, top) {
				t.Fatalf("Covers(%q, %q) but %q matches only the pattern", a, p, top)
			}
		}
	})
}

func TestCoversIsComplete(t *testing.T) {
	// !Covers(a, p) ⇒ some topic matches p and not a. Searching every topic
	// over {a, b, c} up to one segment longer than both patterns finds it.
	rapid.Check(t, func(t *rapid.T) {
		a := topictest.Joined(t, topictest.ValidPatternSeg, rapid.IntRange(1, 4).Draw(t, "acl depth"), "acl segment")
		p := specialise(t, topictest.Joined(t, topictest.ValidPatternSeg, rapid.IntRange(1, 4).Draw(t, "pattern depth"), "pattern segment"))
		if Covers(a, p) {
			return
		}
		limit := max(strings.Count(a, "."), strings.Count(p, ".")) + 2
		if !someTopic(limit, func(top string) bool { return Match(p, top) && !Match(a, top) }) {
			t.Fatalf("Covers(%q, %q) = false, but no topic of up to %d segments tells them apart", a, p, limit)
		}
	})
}

// someTopic reports whether f holds for a topic of 1 to n segments over
// {a, b, c}.
func someTopic(n int, f func(string) bool) bool {
	var walk func(prefix string, left int) bool
	walk = func(prefix string, left int) bool {
		for _, s := range []string{"a", "b", "c"} {
			top := s
			if prefix != "" {
				top = prefix + "." + s
			}
			if f(top) || (left > 1 && walk(top, left-1)) {
				return true
			}
		}
		return false
	}
	return walk("", n)
}
