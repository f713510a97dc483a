package manifest

import (
	"strings"
	"testing"
)

func TestCheckTopicSegments(t *testing.T) {
	// The has_valid_segments vectors of the upstream tests, plus the length
	// limit.
	valid := []string{"a", "a.b", "a.b.c", "*", "a.*.b", "llm.v1.stream.*", strings.Repeat("a", 256)}
	invalid := []string{"", ".", "..", "a..b", ".a", "a.", ".a.b", "a.b.", "a...b", strings.Repeat("a", 257)}
	for _, s := range valid {
		if err := checkTopicSegments(s); err != nil {
			t.Errorf("checkTopicSegments(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range invalid {
		if err := checkTopicSegments(s); err == nil {
			t.Errorf("checkTopicSegments(%q) = nil, want an error", s)
		}
	}
	if err := checkTopicSegments("a..b"); err != errEmptySegments {
		t.Errorf("checkTopicSegments(a..b) = %v, want the upstream message", err)
	}
}
