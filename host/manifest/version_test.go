package manifest

import (
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

func TestParseRequirement(t *testing.T) {
	tests := []struct {
		req     string
		version string
		want    bool
	}{
		{"0.5.0", "0.5.1", true}, // Cargo: a bare version is a caret requirement
		{"0.5.2", "0.5.1", false},
		{"0.5", "0.5.9", true},
		{"0.5", "0.6.0", false},
		{"1.2", "1.9.0", true},
		{"1.2", "2.0.0", false},
		{"1", "1.4.2", true},
		{"=0.5.0", "0.5.1", false},
		{"^0.4", "0.5.1", false},
		{">=0.1.0", "0.5.1", true},
		{">=0.2, <0.6", "0.5.1", true},
		{">=0.2, 0.6", "0.5.1", false},
		{"~0.5", "0.5.1", true},
		{"1.x", "1.3.0", true},
		{"*", "0.5.1", true},
	}
	for _, tt := range tests {
		c, err := ParseRequirement(tt.req)
		if err != nil {
			t.Errorf("ParseRequirement(%q): %v", tt.req, err)
			continue
		}
		if got := c.Check(semver.MustParse(tt.version)); got != tt.want {
			t.Errorf("ParseRequirement(%q).Check(%s) = %v, want %v", tt.req, tt.version, got, tt.want)
		}
	}
	for _, bad := range []string{"", "soon", ">>1", "1.2.3.4"} {
		if _, err := ParseRequirement(bad); err == nil {
			t.Errorf("ParseRequirement(%q) succeeded, want an error", bad)
		}
	}
}

func TestAstridVersionBareIsCaret(t *testing.T) {
	doc := strings.Replace(base, "version = \"0.1.0\"\n", "version = \"0.1.0\"\nastrid-version = \"0.5.0\"\n", 1)
	if _, _, err := Parse("Capsule.toml", []byte(doc)); err != nil {
		t.Errorf("astrid-version 0.5.0 on runtime %s: %v", RuntimeVersion, err)
	}
}
