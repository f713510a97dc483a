package statusline

import (
	"strings"
	"testing"
)

// TestRoundTrip: every line the helper writes parses back to itself.
func TestRoundTrip(t *testing.T) {
	for _, l := range []Line{
		{Kind: Ready},
		{Kind: Exec},
		{Kind: Started, PID: 2},
		{Kind: Exit},
		{Kind: Exit, Code: 3},
		{Kind: Exit, Code: -1, Signal: 9},
		{Kind: Exit, Code: 0, Signal: 0, Last: true},
		{Kind: Error, Setup: true, Errno: 13, Msg: "landlock: open /x: permission denied"},
		{Kind: Error, Errno: 2, Msg: `exec: "/bin/nope": no such file or directory`},
		{Kind: Error, Setup: true, Msg: "serve: a warm helper needs its own pid namespace"},
	} {
		t.Run(strings.TrimSpace(l.String()), func(t *testing.T) {
			s := l.String()
			if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
				t.Fatalf("%q is not one line", s)
			}
			got, err := Parse(s)
			if err != nil || got != l {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", s, got, err, l)
			}
		})
	}
	// A message with newlines stays one line.
	l := Line{Kind: Error, Msg: "a\nb"}
	if got, err := Parse(l.String()); err != nil || got.Msg != "a b" {
		t.Fatalf("multi-line message: %+v, %v", got, err)
	}
}

// TestParseRefuses: anything else is an error quoting the line.
func TestParseRefuses(t *testing.T) {
	for _, line := range []string{
		"", "\n", "ready now\n", "exec 1\n", "started\n", "started x\n", "started 0\n", "started -4\n",
		"exit\n", "exit 1\n", "exit 1 2 3\n", "exit a 0\n", "exit 0 0 first\n",
		"error\n", "error setup 1\n", "error other 1 msg\n", "error exec x msg\n", "hello\n",
	} {
		if got, err := Parse(line); err == nil || !strings.Contains(err.Error(), "the helper said") {
			t.Errorf("Parse(%q) = %+v, %v; want an error quoting it", line, got, err)
		}
	}
}
