package shim

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/astrid-go/astrid/shared/pb"
)

// Log batches are flushed when they reach either bound, and always at the end of a call, so a
// chatty guest costs one RPC per batch rather than one per line.
const (
	logBatchEntries = 256
	logBatchBytes   = 1 << 20
	logFlushTimeout = 5 * time.Second
)

// logSink forwards the capsule's log lines to the host's Log service in order. Before the host's
// services are connected (and if they fail), lines go to the shim's own log, which go-plugin
// relays to the host as well.
type logSink struct {
	local   hclog.Logger
	dial    func() (pb.HostServicesClient, *grpc.ClientConn, error)
	client  pb.HostServicesClient
	conn    *grpc.ClientConn
	pending []*pb.LogEntry
	bytes   int
}

// connect dials the host's services in the background: the broker round trip then overlaps
// with loading the module instead of adding to every capsule start. The first flush waits for it.
func (l *logSink) connect(dial func() (pb.HostServicesClient, *grpc.ClientConn, error)) {
	type result struct {
		client pb.HostServicesClient
		conn   *grpc.ClientConn
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c, conn, err := dial()
		done <- result{c, conn, err}
	}()
	l.dial = func() (pb.HostServicesClient, *grpc.ClientConn, error) {
		r := <-done
		return r.client, r.conn, r.err
	}
}

func (l *logSink) add(level pb.LogEntry_Level, source, message string) {
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
	if l.client == nil && l.dial != nil {
		var err error
		l.client, l.conn, err = l.dial()
		l.dial = nil
		if err != nil {
			l.local.Warn("cannot reach the host's log service; logging locally", "error", err)
		}
	}
	if l.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), logFlushTimeout)
		_, err := l.client.Log(ctx, &pb.LogRequest{Entries: entries})
		cancel()
		if err == nil {
			return
		}
		l.local.Warn("host log service failed; logging locally", "error", err)
	}
	for _, e := range entries {
		l.local.Log(hclog.Level(e.Level)+hclog.Trace, e.Message, "source", e.Source)
	}
}

func (l *logSink) close() {
	l.flush()
	if l.dial != nil {
		// Never used: collect the connection so it can be closed.
		l.client, l.conn, _ = l.dial()
		l.dial = nil
	}
	if l.conn != nil {
		l.conn.Close()
	}
}
