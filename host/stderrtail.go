package host

import (
	"strings"
	"sync"

	"github.com/astrid-go/astrid/shared/logtext"
)

// Bounds of stderrTail: the crash event carries the last stderrTailLines lines the shim wrote to
// stderr that were not log lines (a Go runtime crash report, a Rust panic), each cut to
// stderrLineBytes.
const (
	stderrTailLines = 20
	stderrLineBytes = 1 << 10
)

// stderrTail keeps the last lines a shim wrote to stderr outside its structured log, so a crash
// event can say what the shim said as it died. go-plugin writes each such line to
// ClientConfig.Stderr.
type stderrTail struct {
	mu    sync.Mutex
	lines []string
}

func (t *stderrTail) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\r\n")
	if line == "" {
		return len(p), nil
	}
	if len(line) > stderrLineBytes {
		line = line[:stderrLineBytes] + "…"
	}
	// The shim chose these bytes (a guest may have escaped into it): escaped before they reach a
	// crash event or a terminal.
	line = logtext.Escape(line)
	t.mu.Lock()
	if len(t.lines) == stderrTailLines {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
	t.mu.Unlock()
	return len(p), nil
}

// Lines returns a copy of the kept lines, oldest first.
func (t *stderrTail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}
