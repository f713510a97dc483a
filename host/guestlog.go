package host

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/shared/logtext"
	"github.com/astrid-go/astrid/shared/pb"
)

// The log rate limit of one capsule instance: what its guest logs (log_* calls, stdout, stderr)
// and what its shim writes on stderr together may reach the host's log at LogLinesPerSecond
// lines and LogBytesPerSecond bytes a second, with a burst of one second's worth. Lines over the
// limit are dropped and counted; one line a second at most says how many were (the "suppressed"
// note).
const (
	LogLinesPerSecond = 1000
	LogBytesPerSecond = 1 << 20
)

// noteDelay is how long after the first dropped line the suppressed note is written, counting
// every line dropped until then.
const noteDelay = time.Second

// guestLog is the way in to the host's log for everything a capsule's guest, or its shim, chose:
// each line is escaped (logtext), and the instance's lines are rate-limited (LogLinesPerSecond,
// LogBytesPerSecond). The host's own lines about the capsule go to the instance's logger directly.
type guestLog struct {
	log hclog.Logger
	now func() time.Time

	mu                         sync.Mutex
	lineTokens, byteTokens     float64
	last                       time.Time
	droppedLines, droppedBytes int64
	note                       *time.Timer // pending suppressed note
	closed                     bool
}

func newGuestLog(log hclog.Logger) *guestLog {
	return &guestLog{log: log, now: time.Now, lineTokens: LogLinesPerSecond, byteTokens: LogBytesPerSecond}
}

// admit charges lines and n bytes against the rate limit; false means drop them (they are
// counted for the suppressed note).
func (g *guestLog) admit(lines, n int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.last.IsZero() {
		elapsed := now.Sub(g.last).Seconds()
		g.lineTokens = min(LogLinesPerSecond, g.lineTokens+elapsed*LogLinesPerSecond)
		g.byteTokens = min(LogBytesPerSecond, g.byteTokens+elapsed*LogBytesPerSecond)
	}
	g.last = now
	if g.lineTokens >= float64(lines) && g.byteTokens >= float64(n) {
		g.lineTokens -= float64(lines)
		g.byteTokens -= float64(n)
		return true
	}
	g.droppedLines += int64(lines)
	g.droppedBytes += int64(n)
	if g.note == nil && !g.closed {
		g.note = time.AfterFunc(noteDelay, g.writeNote)
	}
	return false
}

// writeNote writes the suppressed note for the lines dropped so far, if any.
func (g *guestLog) writeNote() {
	g.mu.Lock()
	lines, n := g.droppedLines, g.droppedBytes
	g.droppedLines, g.droppedBytes, g.note = 0, 0, nil
	g.mu.Unlock()
	if lines > 0 {
		g.log.Warn(fmt.Sprintf("%d log lines (%d bytes) suppressed: the capsule logged more than %d lines or %d bytes a second", lines, n, LogLinesPerSecond, LogBytesPerSecond))
	}
}

// close writes the pending suppressed note at once; later drops write none.
func (g *guestLog) close() {
	g.mu.Lock()
	g.closed = true
	pending := g.note != nil && g.note.Stop()
	g.mu.Unlock()
	if pending {
		g.writeNote()
	}
}

// line writes one line the guest logged (source "log", "stdout" or "stderr"). A stderr entry may
// be a block of lines (the shim gathers consecutive stderr lines): it is shown as one block.
func (g *guestLog) line(level hclog.Level, source, message string) {
	source = logtext.Escape(source)
	if strings.Contains(message, "\n") {
		block := logtext.EscapeBlock(message)
		if !g.admit(strings.Count(block, "\n")+1, len(block)) {
			return
		}
		g.log.Log(level, "guest "+source, source, block)
		return
	}
	message = logtext.Escape(message)
	if g.admit(1, len(message)) {
		g.log.Log(level, message, "source", source)
	}
}

// relay is the logger go-plugin writes the shim's stderr to (its JSON log lines, and any other
// line, such as a Go runtime crash report): every message, key and value is escaped, and the lines
// count against the instance's rate limit. go-plugin's own lines about the shim use the logger
// it is given directly and are only escaped; the relay is the sub-logger it names for the
// shim's stderr.
func (g *guestLog) relay() hclog.Logger {
	return &escapingLogger{Logger: g.log, g: g}
}

// escapingLogger wraps an hclog.Logger so that what it writes is escaped, and, once named (the
// logger go-plugin relays the shim's stderr through), rate-limited by g.
type escapingLogger struct {
	hclog.Logger
	g       *guestLog
	limited bool
}

func (l *escapingLogger) Log(level hclog.Level, msg string, args ...any) {
	msg, args = logtext.Escape(msg), escapeArgs(args)
	if l.limited && !l.g.admit(1, len(msg)+argsLen(args)) {
		return
	}
	l.Logger.Log(level, msg, args...)
}

func (l *escapingLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *escapingLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *escapingLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *escapingLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *escapingLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *escapingLogger) Named(name string) hclog.Logger {
	return &escapingLogger{Logger: l.Logger.Named(logtext.Escape(name)), g: l.g, limited: true}
}

func (l *escapingLogger) ResetNamed(name string) hclog.Logger {
	return &escapingLogger{Logger: l.Logger.ResetNamed(logtext.Escape(name)), g: l.g, limited: true}
}

func (l *escapingLogger) With(args ...any) hclog.Logger {
	return &escapingLogger{Logger: l.Logger.With(escapeArgs(args)...), g: l.g, limited: l.limited}
}

// escapeArgs escapes the keys and values of an hclog argument list: strings directly (a value
// with newlines as a block), numbers and booleans as they are, anything else as its escaped
// text.
func escapeArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			if i%2 == 1 && strings.Contains(v, "\n") {
				out[i] = logtext.EscapeBlock(v)
			} else {
				out[i] = logtext.Escape(v)
			}
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, bool, time.Duration, time.Time:
			out[i] = v
		default:
			out[i] = logtext.Escape(fmt.Sprint(v))
		}
	}
	return out
}

func argsLen(args []any) int {
	n := 0
	for _, a := range args {
		if s, ok := a.(string); ok {
			n += len(s)
		} else {
			n += 8
		}
	}
	return n
}

// guestError is the shim's account of a failed call with what the guest chose escaped: the
// message as one line, the backtrace (function names come from the module) and the stderr as
// blocks of lines.
func guestError(ge *pb.GuestError) *pb.GuestError {
	return &pb.GuestError{Kind: ge.Kind, ExitCode: ge.ExitCode, Message: logtext.Escape(ge.Message),
		Backtrace: logtext.EscapeBlock(ge.Backtrace), Stderr: logtext.EscapeBlock(ge.Stderr)}
}
