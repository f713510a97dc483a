// Package topictest holds the matcher's test vectors and random topic generators, shared by the
// tests of package bus/topics (the matcher) and package bus (delivery, which must agree with it).
package topictest

import (
	"strings"

	"pgregory.net/rapid"
)

// MatchCase is one Match vector: pattern, topic, result.
type MatchCase struct {
	Pattern, Topic string
	Want           bool
}

// Deep returns n segments "a" joined by dots.
func Deep(n int) string { return strings.TrimSuffix(strings.Repeat("a.", n), ".") }

// BusMatcherVectors are the bus-matcher vectors of the reference §3.3
// (astrid-events bus.rs tests of 0.5 and route/matcher.rs of the new
// runtime). All hold under our one matcher except the derived row for a
// bare "*", noted below.
var BusMatcherVectors = []MatchCase{
	{"astrid.cli.input", "astrid.cli.input", true},
	{"astrid.cli.input", "astrid.telegram.input", false},
	{"astrid.*", "astrid.cli.input", true},
	{"astrid.*", "system.log", false},
	{"astrid.v1.request.*", "astrid.v1.request.list_capsules", true},
	{"astrid.v1.request.*", "astrid.v1.request.foo.bar", true}, // 1+ segments
	{"astrid.v1.request.*", "astrid.v1.request", false},
	{"astrid.v1.request.*", "system.v1.request.foo", false},
	{"a.*", Deep(22), false}, // depth > 20
	{"a.*", Deep(21), false}, // depth 21: one over the cap
	{"a.*", Deep(20), true},  // exactly at the cap
	{"astrid.*.input", "astrid.cli.input", true},
	{"astrid.*.input", "astrid.telegram.input", true},
	{"astrid.*.input", "astrid.cli.output", false},
	{"astrid.*.input", "astrid.cli.sub.input", false},
	{"a.b.c", "a.b.c", true},
	{"a.b.c", "a.b.d", false},
	{"a.b.c", "a.b", false},
	{"a.b.c", "a.b.c.d", false},
	{"a.b.*", "a.b.c", true},
	{"a.b.*", "a.b.c.d", true},
	{"a.b.*", "a.b", false},
	{"a.b.*", "a.c.b", false},
	{"a.*.c", "a.b.c", true},
	{"a.*.c", "a.zz.c", true},
	{"a.*.c", "a.b.d", false},
	{"a.*.c", "a.b.c.d", false},
	{"astrid.v1.admin.*", "astrid.v1.admin.quota", true},
	{"astrid.v1.admin.*", "astrid.v1.admin.agent.list", true},
	{"astrid.v1.admin.*", "astrid.v1.admin.auth.pair.issue", true},
	{"astrid.v1.admin.*", "astrid.v1.admin", false},
	{"astrid.v1.admin.*", "astrid.v1.registry.get", false},
	{"tool.v1.execute.*.result", "tool.v1.execute.read_file.result", true},
	{"tool.v1.execute.*.result", "tool.v1.execute.a.b.result", false},
	{"astrid.v1.admin.*.*", "astrid.v1.admin.agent.list", true},
	{"astrid.v1.admin.*.*", "astrid.v1.admin.auth.pair.issue", true},
	{"astrid.v1.admin.*.*", "astrid.v1.admin.quota", false},
	{"astrid.v1.admin.*.*.*", "astrid.v1.admin.auth.pair.issue", true},
	{"astrid.v1.admin.*.*.*", "astrid.v1.admin.agent.list", false},
	// (derived) rows.
	{"*", "foo", true},
	// DIFFERS from the reference's derived row (false): upstream treats a
	// bare "*" as one segment only because its test is a suffix test for
	// ".*". Our rule (docs/architecture.md#the-bus) is about the last segment, so "*"
	// matches one or more segments, i.e. every topic.
	{"*", "foo.bar", true},
	{"*.*", "foo.bar.baz", true},
	// The [new] pattern_covers_audit vectors, topic astrid.v1.audit.entry.
	{"astrid.v1.audit.entry", "astrid.v1.audit.entry", true},
	{"astrid.v1.audit.*", "astrid.v1.audit.entry", true},
	{"astrid.v1.*", "astrid.v1.audit.entry", true},
	{"astrid.*", "astrid.v1.audit.entry", true},
	{"astrid.v1.request.*", "astrid.v1.audit.entry", false},
	{"astrid.v1.session.*", "astrid.v1.audit.entry", false},
	{"astrid.v1.audit", "astrid.v1.audit.entry", false},
	{"user.prompt", "astrid.v1.audit.entry", false},
}

// StrictMatcherVectors are the reference's strict-matcher vectors
// (topic.rs topic_matches(topic, pattern)), re-read as Match(pattern, topic).
// Every row of the upstream table keeps its result: none has a trailing "*"
// facing a longer topic, the only case where the matchers differ (the strict
// one makes a trailing "*" exactly one segment; ours one or more). The rows
// after the table show that difference.
var StrictMatcherVectors = []MatchCase{
	{"user.prompt", "user.prompt", true},
	{"llm.stream.anthropic", "llm.stream.anthropic", true},
	{"tool.execute.*.result", "tool.execute.search.result", true},
	{"tool.execute.*.result", "tool.execute.code-run.result", true},
	{"tool.execute.*.result", "tool.execute.result", false}, // segment count
	{"llm.stream.anthropic", "user.prompt", false},
	{"user.prompt", "user.prompt.extra", false},
	{"user.prompt", "user", false},
	{"ping", "ping", true},
	{"pong", "ping", false},
	{"*.bar.baz", "foo.bar.baz", true},
	{"foo.bar.*", "foo.bar.baz", true},
	{"*.b.*", "a.b.c", true},
	{"*.b.*", "x.b.z", true},
	{"*.b.*", "x.c.z", false},
	{"a.*.b", "a..b", false},
	{"a..b", "a.x.b", false},
	{"*.a.b", ".a.b", false},
	{".a.b", "x.a.b", false},
	{"a.b.*", "a.b.", false},
	{"a.b.", "a.b.x", false},
	{"*.*", ".", false},
	{"", "", false},
	{"a", "", false},
	{"", "a", false},
	// Not upstream rows: where the strict matcher said false and ours says
	// true, because a trailing "*" is one or more segments.
	{"foo.bar.*", "foo.bar.baz.qux", true}, // strict: false
	{"*.b.*", "a.b.c.d", true},             // strict: false
	{"user.*", "user.prompt.extra", true},  // strict: false
}

// Joined draws n segments from seg and joins them with dots.
func Joined(t *rapid.T, seg *rapid.Generator[string], n int, label string) string {
	segs := make([]string, n)
	for i := range segs {
		segs[i] = seg.Draw(t, label)
	}
	return strings.Join(segs, ".")
}

// Small alphabets, so that matches are frequent. "" makes empty segments;
// "c" in topics is a literal no pattern names.
var (
	PatternSeg      = rapid.SampledFrom([]string{"a", "b", "*", "*", ""})
	ValidPatternSeg = rapid.SampledFrom([]string{"a", "b", "*"})
	TopicSeg        = rapid.SampledFrom([]string{"a", "b", "c", "*", ""})
	ValidTopicSeg   = rapid.SampledFrom([]string{"a", "b", "c"})
)
