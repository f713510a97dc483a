package topics

import (
	"testing"

	"github.com/astrid-go/astrid/bus/internal/topictest"
)

// FuzzMatch checks Match against the naive reference definition, and that
// Covers is reflexive and sound, on arbitrary strings.
func FuzzMatch(f *testing.F) {
	for _, c := range append(topictest.BusMatcherVectors, topictest.StrictMatcherVectors...) {
		f.Add(c.Pattern, c.Topic)
	}
	f.Add("*", topictest.Deep(21))
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		got := Match(pattern, topic)
		if want := naiveMatch(pattern, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, naive = %v", pattern, topic, got, want)
		}
		if Covers(pattern, pattern) != validSegments(pattern) {
			t.Fatalf("Covers(%q, itself) = %v", pattern, !validSegments(pattern))
		}
		// topic read as a pattern: if pattern covers it, pattern matches
		// every topic it does, including topic itself read literally.
		if Covers(pattern, topic) && Match(topic, topic) && !got {
			t.Fatalf("Covers(%q, %q) but Match(%q, %q) = false", pattern, topic, pattern, topic)
		}
	})
}
