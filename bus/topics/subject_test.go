package topics

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"pgregory.net/rapid"

	"github.com/astrid-go/astrid/bus/internal/topictest"
)

func TestTopicSubject(t *testing.T) {
	for _, c := range []struct{ topic, want string }{
		{"a.b", "astrid.bus.a.b"},
		{"user.v1.prompt", "astrid.bus.user.v1.prompt"},
		{"a.*", "astrid.bus.a.~2a"},       // a literal "*" is never a NATS wildcard
		{"a.>", "astrid.bus.a.~3e"},       // nor a literal ">"
		{"a.b c", "astrid.bus.a.~622063"}, // NATS forbids whitespace in tokens
		{"a.~x", "astrid.bus.a.~7e78"},    // '~' marks escapes, so it is escaped itself
		{"é", "astrid.bus.~c3a9"},         // non-ASCII
		{"a-b_C9", "astrid.bus.a-b_C9"},   // safe characters stay
		{"a*", "astrid.bus.~612a"},        // "a*" is a literal, as in Match
		{"x.\x00", "astrid.bus.x.~00"},    // control bytes
		{topictest.Deep(20), "astrid.bus." + topictest.Deep(20)},
	} {
		t.Run(c.topic, func(t *testing.T) {
			got, ok := TopicSubject(c.topic)
			if !ok || got != c.want {
				t.Fatalf("TopicSubject(%q) = %q, %v; want %q", c.topic, got, ok, c.want)
			}
			if !server.IsValidLiteralSubject(got) {
				t.Fatalf("%q is not a valid literal NATS subject", got)
			}
			back, ok := SubjectTopic(got)
			if !ok || back != c.topic {
				t.Fatalf("SubjectTopic(%q) = %q, %v; want %q", got, back, ok, c.topic)
			}
		})
	}
	for _, bad := range []string{"", ".", "a..b", "a.", topictest.Deep(21)} {
		t.Run("refused "+bad, func(t *testing.T) {
			if s, ok := TopicSubject(bad); ok {
				t.Fatalf("TopicSubject(%q) = %q, want refused", bad, s)
			}
		})
	}
}

func TestPatternSubject(t *testing.T) {
	for _, c := range []struct{ pattern, want string }{
		{"a.b", "astrid.bus.a.b"},
		{"a.*", "astrid.bus.a.>"},     // trailing "*": one or more
		{"a.*.c", "astrid.bus.a.*.c"}, // inner "*": exactly one
		{"*", "astrid.bus.>"},
		{"*.*", "astrid.bus.*.>"},
		{"a.b c.*", "astrid.bus.a.~622063.>"},
		{"a.>", "astrid.bus.a.~3e"}, // ">" is no wildcard of ours
	} {
		t.Run(c.pattern, func(t *testing.T) {
			got, ok := PatternSubject(c.pattern)
			if !ok || got != c.want {
				t.Fatalf("PatternSubject(%q) = %q, %v; want %q", c.pattern, got, ok, c.want)
			}
			if !server.IsValidSubject(got) {
				t.Fatalf("%q is not a valid NATS subject", got)
			}
		})
	}
	for _, bad := range []string{"", "a..*", "*.", topictest.Deep(21)} {
		t.Run("refused "+bad, func(t *testing.T) {
			if s, ok := PatternSubject(bad); ok {
				t.Fatalf("PatternSubject(%q) = %q, want refused", bad, s)
			}
		})
	}
}

func TestSubjectTopicRefusesForeignSubjects(t *testing.T) {
	for _, s := range []string{"", "astrid.bus.", "other.a.b", "astrid.bus.a..b", "astrid.bus.~", "astrid.bus.~zz",
		"astrid.bus.~2A", "astrid.bus.~61", "astrid.bus.~2e", "astrid.bus.a*", "astrid.bus." + topictest.Deep(21)} {
		t.Run(s, func(t *testing.T) {
			if topic, ok := SubjectTopic(s); ok {
				t.Fatalf("SubjectTopic(%q) = %q, want refused", s, topic)
			}
		})
	}
}

// natsAgrees checks that NATS's matching of the mapped subjects accepts everything Match does,
// and, since the receiving host checks Match again, that the two together are exactly Match.
func natsAgrees(t interface{ Fatalf(string, ...any) }, pattern, topic string) {
	want := Match(pattern, topic)
	ps, pok := PatternSubject(pattern)
	ts, tok := TopicSubject(topic)
	nats := pok && tok && server.SubjectMatchesFilter(ts, ps)
	if want && !nats {
		t.Fatalf("Match(%q, %q) but NATS does not match %q against %q", pattern, topic, ts, ps)
	}
	if nats && !want {
		// Allowed only where Match's depth limit is what refuses; with the depth within limits
		// both agree exactly.
		if len(strings.Split(topic, ".")) <= MaxDepth {
			t.Fatalf("NATS matches %q against %q but Match(%q, %q) is false", ts, ps, pattern, topic)
		}
	}
	if tok {
		if back, ok := SubjectTopic(ts); !ok || back != topic {
			t.Fatalf("SubjectTopic(TopicSubject(%q)) = %q, %v", topic, back, ok)
		}
	}
}

func TestSubjectMappingAgreesWithMatch(t *testing.T) {
	for _, c := range append(topictest.BusMatcherVectors, topictest.StrictMatcherVectors...) {
		natsAgrees(t, c.Pattern, c.Topic)
	}
	seg := rapid.SampledFrom([]string{"a", "b", "*", ">", "~", " ", "a b", "~2a", ""})
	rapid.Check(t, func(rt *rapid.T) {
		p := topictest.Joined(rt, seg, rapid.IntRange(1, 6).Draw(rt, "pattern depth"), "pattern segment")
		top := topictest.Joined(rt, seg, rapid.IntRange(1, 6).Draw(rt, "topic depth"), "topic segment")
		natsAgrees(rt, p, top)
		natsAgrees(rt, p, instantiate(rt, strings.ReplaceAll(p, "..", ".a.")))
	})
}

// FuzzSubjectMapping checks the mapping against Match on arbitrary strings.
func FuzzSubjectMapping(f *testing.F) {
	for _, c := range topictest.BusMatcherVectors {
		f.Add(c.Pattern, c.Topic)
	}
	f.Add("a.*", "a.*")
	f.Add("a.*.c", "a. .c")
	f.Fuzz(func(t *testing.T, pattern, topic string) { natsAgrees(t, pattern, topic) })
}
