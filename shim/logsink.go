package shim

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/shared/pb"
)

// Log batches are flushed when they reach either bound, and always at the end of a call, so a
// chatty guest costs one RPC per batch rather than one per line.
const (
	logBatchEntries = 256
	logBatchBytes   = 1 << 20
	logFlushTimeout = 5 * time.Second
)

// logSink forwards the capsule's log lines at or above its level to the host's Log service, in
// order. Before the host is connected (and if the host cannot be reached), lines go to the shim's
// own log, which go-plugin relays to the host as well.
type logSink struct {
	local   hclog.Logger
	host    *hostConn
	level   int32 // lines below it are dropped (see LogLevelOff)
	pending []*pb.LogEntry
	bytes   int
}

func (l *logSink) add(level pb.LogEntry_Level, source, message string) {
	if int32(level) < l.level {
		return
	}
	l.pending = append(l.pending, &pb.LogEntry{Level: level, Source: source, Message: message})
	l.bytes += len(message)
	if len(l.pending) >= logBatchEntries || l.bytes >= logBatchBytes {
		l.flush()
	}
}

// flush sends the pending lines. It runs under the Store lock, which keeps lines in order.
func (l *logSink) flush() {
	if len(l.pending) == 0 {
		return
	}
	entries := l.pending
	l.pending, l.bytes = nil, 0
	client, err := l.host.get()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), logFlushTimeout)
		_, err = client.Log(ctx, &pb.LogRequest{Entries: entries})
		cancel()
		if err == nil {
			return
		}
	}
	if l.host != nil {
		l.local.Warn("cannot reach the host's log service; logging locally", "error", err)
	}
	for _, e := range entries {
		l.local.Log(hclog.Level(e.Level)+hclog.Trace, e.Message, "source", e.Source)
	}
}
