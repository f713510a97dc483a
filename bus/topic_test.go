package bus

import (
	"strings"
	"testing"
)

func TestCheckSegments(t *testing.T) {
	// The has_valid_segments vectors of the upstream tests, plus the length
	// limit.
	valid := []string{"a", "a.b", "a.b.c", "*", "a.*.b", "llm.v1.stream.*", strings.Repeat("a", 256)}
	invalid := []string{"", ".", "..", "a..b", ".a", "a.", ".a.b", "a.b.", "a...b", strings.Repeat("a", 257)}
	for _, s := range valid {
		if err := CheckSegments(s); err != nil {
			t.Errorf("CheckSegments(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range invalid {
		if err := CheckSegments(s); err == nil {
			t.Errorf("CheckSegments(%q) = nil, want an error", s)
		}
	}
	if err := CheckSegments("a..b"); err != ErrEmptySegments {
		t.Errorf("CheckSegments(a..b) = %v, want the upstream message", err)
	}
}

func TestCheckGuestTopics(t *testing.T) {
	long := strings.Repeat("a", 257)
	nine := "a.b.c.d.e.f.g.h.i"
	bad := "a.\xff"
	cases := []struct {
		in               string
		publish, pattern error // nil = accepted
	}{
		{"a", nil, nil},
		{"a.b.c.d.e.f.g.h", nil, nil}, // 8 segments
		{strings.Repeat("a", 256), nil, nil},
		{"日本.語", nil, nil},
		{"*", nil, nil},
		{"foo.bar.*", nil, nil},
		// Upstream refused these subscriptions ("Wildcard `*` is only
		// supported as the last segment"); we keep them (docs/abi.md#topics-and-patterns).
		{"a.*.b", nil, nil},
		{"*.x", nil, nil},
		{"astrid.v1.admin.response.*.*", nil, nil},
		{long, ErrTopicTooLong, ErrPatternTooLong},
		{bad, ErrTopicNotUTF8, ErrPatternNotUTF8},
		{"", ErrTopicEmptySegments, ErrPatternEmptySegments},
		{".", ErrTopicEmptySegments, ErrPatternEmptySegments},
		{"a..b", ErrTopicEmptySegments, ErrPatternEmptySegments},
		{"a.b.", ErrTopicEmptySegments, ErrPatternEmptySegments},
		{nine, ErrTopicTooManySegments, ErrPatternTooManySegments},
		// Upstream's order: length, UTF-8, empty segments, depth.
		{strings.Repeat("\xff.", 200), ErrTopicTooLong, ErrPatternTooLong},
		{"\xff..", ErrTopicNotUTF8, ErrPatternNotUTF8},
		{nine + "..", ErrTopicEmptySegments, ErrPatternEmptySegments},
	}
	for _, c := range cases {
		if err := CheckPublishTopic(c.in); err != c.publish {
			t.Errorf("CheckPublishTopic(%.40q) = %v, want %v", c.in, err, c.publish)
		}
		if err := CheckSubscribePattern(c.in); err != c.pattern {
			t.Errorf("CheckSubscribePattern(%.40q) = %v, want %v", c.in, err, c.pattern)
		}
	}
}

func TestGuestTopicTexts(t *testing.T) {
	// The texts are upstream's, character for character (ipc.rs v0.5).
	for err, want := range map[error]string{
		ErrTopicTooLong:           "Topic exceeds maximum allowed length (256 bytes)",
		ErrTopicNotUTF8:           "Topic is not valid UTF-8",
		ErrTopicEmptySegments:     "Topic contains empty segments (consecutive dots, leading/trailing dots, or is empty)",
		ErrTopicTooManySegments:   "Topic exceeds maximum allowed segments (8)",
		ErrPatternTooLong:         "Topic pattern exceeds maximum allowed length (256 bytes)",
		ErrPatternNotUTF8:         "Topic pattern is not valid UTF-8",
		ErrPatternEmptySegments:   "Topic pattern contains empty segments (consecutive dots, leading/trailing dots, or is empty)",
		ErrPatternTooManySegments: "Topic pattern exceeds maximum allowed segments (8)",
	} {
		if err.Error() != want {
			t.Errorf("error text %q, want %q", err, want)
		}
	}
}
