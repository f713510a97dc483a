package principal

import (
	"strings"
	"testing"
)

// TestCheck: upstream's PrincipalId rule and error words.
func TestCheck(t *testing.T) {
	cases := []struct{ id, want string }{
		{"alice", ""},
		{"default", ""},
		{"a_b-C9", ""},
		{"alice-1_B", ""},
		{strings.Repeat("a", 64), ""},
		{"", "principal id must not be empty"},
		{strings.Repeat("a", 65), "principal id exceeds 64 characters"},
		{"../x", "principal id contains invalid character '.'"},
		{"..", "principal id contains invalid character '.'"},
		{"a/b", "principal id contains invalid character '/'"},
		{"a b", "principal id contains invalid character ' '"},
		{"é", "principal id contains invalid character 'é'"},
		{"a\x00", "principal id contains invalid character '\\x00'"},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			err := Check(c.id)
			if Valid(c.id) != (err == nil) {
				t.Fatalf("Valid(%q) = %v but Check says %v", c.id, Valid(c.id), err)
			}
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("Check(%q) = %v, want %q", c.id, err, c.want)
			}
		})
	}
}
