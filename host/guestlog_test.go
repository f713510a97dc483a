package host

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testGuestLog is a guestLog writing to a buffer, on a clock the test moves.
func testGuestLog() (*guestLog, *syncBuffer, *time.Time) {
	out := &syncBuffer{}
	g := newGuestLog(hclog.New(&hclog.LoggerOptions{Name: "host.capsule", Output: out, Level: hclog.Trace}))
	clock := time.Unix(1000, 0)
	g.now = func() time.Time { return clock }
	return g, out, &clock
}

// TestGuestLogRateLimit: the bucket holds one second's worth of lines and bytes and refills at the
// rate; what does not fit is dropped and counted in one note.
func TestGuestLogRateLimit(t *testing.T) {
	tests := []struct {
		name      string
		run       func(g *guestLog, clock *time.Time) // logs lines
		wantShown int
		wantNote  string
	}{
		{"burst of lines", func(g *guestLog, _ *time.Time) {
			for range LogLinesPerSecond + 500 {
				g.line(hclog.Info, "log", "x")
			}
		}, LogLinesPerSecond, "500 log lines (500 bytes) suppressed"},
		{"refill", func(g *guestLog, clock *time.Time) {
			for range LogLinesPerSecond + 10 {
				g.line(hclog.Info, "log", "x")
			}
			*clock = clock.Add(250 * time.Millisecond)
			for range 300 {
				g.line(hclog.Info, "log", "x")
			}
		}, LogLinesPerSecond + LogLinesPerSecond/4, "60 log lines (60 bytes) suppressed"},
		{"bytes", func(g *guestLog, _ *time.Time) {
			line := strings.Repeat("b", 64<<10)
			for range 20 {
				g.line(hclog.Info, "log", line)
			}
		}, 16, "4 log lines (262144 bytes) suppressed"},
		{"a block counts its lines", func(g *guestLog, _ *time.Time) {
			g.line(hclog.Warn, "stderr", strings.Repeat("l\n", LogLinesPerSecond-1)+"l")
			g.line(hclog.Warn, "stderr", "a\nb")
		}, 1, "2 log lines (3 bytes) suppressed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, out, clock := testGuestLog()
			tc.run(g, clock)
			g.close()
			text := out.String()
			shown := strings.Count(text, "\n") - strings.Count(text, "suppressed:")
			if strings.Contains(tc.name, "block") {
				shown = strings.Count(text, "guest stderr:")
			}
			if shown != tc.wantShown {
				t.Errorf("%d entries shown, want %d", shown, tc.wantShown)
			}
			if strings.Count(text, "suppressed:") != 1 || !strings.Contains(text, tc.wantNote) {
				t.Errorf("want one note saying %q; log:\n%.2000s", tc.wantNote, text[max(0, len(text)-2000):])
			}
		})
	}
}

// TestRelayEscapes: what go-plugin relays from the shim's stderr (a JSON log line's message, keys
// and values, or a raw line) is escaped, and counts against the instance's rate limit.
func TestRelayEscapes(t *testing.T) {
	g, out, _ := testGuestLog()
	relay := g.relay().Named("astrid-shim") // as go-plugin's logStderr does
	relay.Error("[ERROR] raw line\n[ERROR] forged\x1b[31m")
	relay.Info("json line", "key\x1b[1m", "value\nsecond\x1b[2J", "n", 3)
	for range 2 * LogLinesPerSecond {
		relay.Debug("flood")
	}
	g.close()
	text := out.String()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "[ERROR] forged") {
			t.Errorf("forged line %q", line)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Errorf("a control byte got through:\n%q", text)
	}
	for _, want := range []string{`[ERROR] raw line\n[ERROR] forged\x1b[31m`, `key\x1b[1m=`, `| second\x1b[2J`} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "flood"); n != LogLinesPerSecond-2 {
		t.Errorf("%d flood lines relayed; want the rest of the second's %d", n, LogLinesPerSecond)
	}
	if !strings.Contains(text, "1002 log lines") {
		t.Errorf("no note for the 1002 dropped lines:\n%s", text[max(0, len(text)-500):])
	}
}
