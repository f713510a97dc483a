package shim

import (
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/logtext"
	"github.com/astrid-go/astrid/shared/pb"
)

// Log batches are flushed when they reach either bound (callwire.MaxLogBatch lines, or
// logBatchBytes: a line is at most MaxLogLineBytes, escaped at most four times that, so a batch
// stays far below the call connection's frame limit), and always at the end of a call, so a
// chatty guest costs one frame per batch rather than one per line.
const logBatchBytes = 1 << 20

// Bounds of a stderr block: consecutive stderr lines travel as one log entry (a Go runtime's
// crash report is one readable block, not 60 log lines) of at most maxBlockLines lines and about
// maxBlockBytes bytes; a longer run of stderr is sent as several blocks.
const (
	maxBlockLines = 256
	maxBlockBytes = 64 << 10
)

// logSink forwards the capsule's log lines at or above its level to the host, in order, in Log
// frames on the call connection: after the publishes and host calls that came before them, before
// the result of the call that logged them. Without the call connection (a shim started without
// one, or once it has ended), lines go to the shim's own log, which go-plugin relays to the host
// as well.
//
// Every line is escaped here (logtext.Escape), where the guest's bytes leave it; the host escapes
// them again, as it cannot trust a shim. Consecutive stderr lines are gathered into one block:
// the block is queued as one entry when another kind of line comes, when it is full and when the
// lines are flushed, except that the block of a call that failed goes with its error instead
// (takeStderr).
type logSink struct {
	local   hclog.Logger
	calls   *callwire.ShimEnd
	level   int32 // lines below it are dropped (see LogLevelOff)
	pending []*pb.LogEntry
	bytes   int

	block      []string // stderr lines not yet queued, escaped, oldest first
	blockBytes int
}

func (l *logSink) add(level pb.LogEntry_Level, source, message string) {
	message = logtext.Escape(message)
	if source == "stderr" {
		// Kept whatever the level: a failed call's stderr goes with its error (takeStderr).
		l.block = append(l.block, message)
		l.blockBytes += len(message) + 1
		if len(l.block) >= maxBlockLines || l.blockBytes >= maxBlockBytes {
			l.endBlock()
		}
		return
	}
	l.endBlock()
	l.queue(level, source, message)
}

// queue adds one entry to the batch, sending the batch when it is full.
func (l *logSink) queue(level pb.LogEntry_Level, source, message string) {
	if int32(level) < l.level {
		return
	}
	l.pending = append(l.pending, &pb.LogEntry{Level: level, Source: source, Message: message})
	l.bytes += len(message)
	if len(l.pending) >= callwire.MaxLogBatch || l.bytes >= logBatchBytes {
		l.send()
	}
}

// endBlock queues the gathered stderr lines as one entry.
func (l *logSink) endBlock() {
	if block := l.takeStderr(); block != "" {
		l.queue(pb.LogEntry_WARN, "stderr", block)
	}
}

// takeStderr returns the stderr lines gathered since the last other line or flush as one block
// (lines joined by "\n"), and forgets them: the caller shows them under a failed call's error
// rather than as log lines.
func (l *logSink) takeStderr() string {
	if len(l.block) == 0 {
		return ""
	}
	block := strings.Join(l.block, "\n")
	clear(l.block)
	l.block, l.blockBytes = l.block[:0], 0
	return block
}

// flush sends the pending lines, the stderr block included. It runs under the Store lock, which
// keeps lines in order.
func (l *logSink) flush() {
	l.endBlock()
	l.send()
}

func (l *logSink) send() {
	if len(l.pending) == 0 {
		return
	}
	entries := l.pending
	l.pending, l.bytes = nil, 0
	err := l.calls.SendLog(&pb.LogRequest{Entries: entries})
	if err == nil {
		return
	}
	if l.calls != nil {
		l.local.Warn("cannot send log lines to the host; logging locally", "error", err)
	}
	for _, e := range entries {
		l.local.Log(hclog.Level(e.Level)+hclog.Trace, e.Message, "source", e.Source)
	}
}
