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
