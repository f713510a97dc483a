package topics

import (
	"testing"

	"github.com/astrid-go/astrid/bus/internal/topictest"
)

// matchCase is one Match vector of this file's own.
type matchCase struct {
	pattern, topic string
	want           bool
}

func TestMatchBusVectors(t *testing.T)    { testMatch(t, vectors(topictest.BusMatcherVectors)) }
func TestMatchStrictVectors(t *testing.T) { testMatch(t, vectors(topictest.StrictMatcherVectors)) }

// vectors turns the shared vectors into matchCases.
func vectors(vs []topictest.MatchCase) []matchCase {
	out := make([]matchCase, len(vs))
	for i, v := range vs {
		out[i] = matchCase{v.Pattern, v.Topic, v.Want}
	}
	return out
}

func testMatch(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		if got := Match(c.pattern, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.topic, got, c.want)
		}
		if got := naiveMatch(c.pattern, c.topic); got != c.want {
			t.Errorf("naiveMatch(%q, %q) = %v, want %v (the reference definition disagrees with the table)", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestMatchMore(t *testing.T) {
	testMatch(t, []matchCase{
		{"a*", "ab", false},                             // no partial-segment wildcard
		{"a*", "a*", true},                              // a literal segment
		{"a.*", "a.*", true},                            // "*" in a topic is a literal segment
		{"a.b", "a.*", false},                           // a literal pattern does not match a "*" topic segment
		{"*.*.*", topictest.Deep(20), true},             // depth cap applies to topics at any pattern
		{topictest.Deep(21), topictest.Deep(21), false}, // too topictest.Deep on both sides
		{topictest.Deep(20), topictest.Deep(20), true},  // exactly at the cap
		{topictest.Deep(19) + ".*", topictest.Deep(20), true},
		{topictest.Deep(20) + ".*", topictest.Deep(20), false},
		{"a.*", "a", false},
		{"*", "", false},
		{"*", ".", false},
		{"a.*", "a.b.", false},
		{"a.*.*", "a.b", false},
		{"日本.*", "日本.語", true},
	})
}

// coverCase is one subscribe-ACL vector: the requested pattern, the ACL
// entries, and whether subscribing is allowed.
type coverCase struct {
	pattern string
	acl     []string
	allowed bool
}

// allowedBy is the subscribe-ACL decision: some entry covers pattern (an
// empty ACL denies).
func allowedBy(acl []string, pattern string) bool {
	for _, a := range acl {
		if Covers(a, pattern) {
			return true
		}
	}
	return false
}

func TestCoversSubscribeACLVectors(t *testing.T) {
	// The reference's subscribe-ACL table (host/ipc_tests.rs). Our results
	// are the [new] column: registry.v1.selection.callback is allowed by
	// registry.v1.* (v0.5 denied it on segment count) and foo.* is denied by
	// foo.bar.
	cases := []coverCase{
		{"any.topic", nil, false},
		{"agent.v1.response", []string{"agent.v1.response"}, true},
		{"registry.v1.providers", []string{"registry.v1.*"}, true},
		{"registry.v1.selection.callback", []string{"registry.v1.*"}, true},
		{"foo.*", []string{"foo.*"}, true},
		{"foo.*", []string{"foo.bar"}, false},
		{"session.v1.clear", []string{"agent.v1.*"}, false},
		{"session.v1.response.abc", []string{"agent.v1.*", "session.v1.response.*"}, true},
		{"foo.x.bar", []string{"foo..bar"}, false},
		// Further cases of the brief and of our rules.
		{"registry.v1.*.x", []string{"registry.v1.*"}, true},
		{"registry.v1.*", []string{"registry.v1.*.*"}, false}, // registry.v1.a is not covered
		{"registry.*", []string{"registry.v1.*"}, false},
		{"a.*.c", []string{"a.b.c"}, false},
		{"a.b.c", []string{"a.*.c"}, true},
		{"a.*.c", []string{"a.*.c"}, true},
		{"a.*.c", []string{"a.*.*"}, true},
		{"a.*.*", []string{"a.*.c"}, false},
		{"a.*", []string{"*"}, true},
		{"*", []string{"*"}, true},
		{"*", []string{"a.*"}, false},
		{"*.x", []string{"*.*"}, true},
		{"x.y", []string{"*.*"}, true},
		{"x", []string{"*.*"}, false},
		{"astrid.v1.admin.response.*.*", []string{"astrid.v1.admin.response.*"}, true},
		{"astrid.v1.admin.response.*", []string{"astrid.v1.admin.response.*.*"}, false},
		{"a..b", []string{"*"}, false}, // malformed request
		{"", []string{"*"}, false},
	}
	for _, c := range cases {
		if got := allowedBy(c.acl, c.pattern); got != c.allowed {
			t.Errorf("subscribe %q with ACL %q: allowed = %v, want %v", c.pattern, c.acl, got, c.allowed)
		}
	}
}

func TestCoversAuditVectors(t *testing.T) {
	// The [new] pattern_covers_audit test asks whether a subscription pattern
	// covers astrid.v1.audit.entry; under Covers that is the same question
	// with the topic as a (literal) pattern.
	for _, c := range topictest.BusMatcherVectors {
		if c.Topic != "astrid.v1.audit.entry" {
			continue
		}
		if got := Covers(c.Pattern, c.Topic); got != c.Want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.Pattern, c.Topic, got, c.Want)
		}
	}
}

func TestCoversItself(t *testing.T) {
	for _, p := range []string{"a", "a.b", "*", "a.*", "*.a", "a.*.b", "*.*.*", topictest.Deep(25), topictest.Deep(25) + ".*"} {
		if !Covers(p, p) {
			t.Errorf("Covers(%q, %q) = false", p, p)
		}
	}
	for _, p := range []string{"", ".", "a.", ".a", "a..b"} {
		if Covers(p, p) {
			t.Errorf("Covers(%q, %q) = true for a malformed pattern", p, p)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	topic := "astrid.v1.admin.auth.pair.issue"
	if n := testing.AllocsPerRun(100, func() { Match("astrid.*.admin.*", topic) }); n != 0 {
		t.Errorf("Match allocates %v times per call", n)
	}
}
