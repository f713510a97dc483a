package host

import (
	"context"
	"sync"

	"google.golang.org/grpc/stats"
)

// connWatch tells when the host's gRPC connection to a shim ends (a grpc stats.Handler on the
// go-plugin client's connection, which carries Load, Shutdown, the shim's log and the broker).
// The call connection (two pipes) cannot break while both processes live, but this one can: a
// shim whose gRPC connection is gone cannot be loaded, stopped or reached by its processes any
// more, so Instance.watchExit takes it for a crash (metrics.CrashConnectionLost).
type connWatch struct {
	once  sync.Once
	ended chan struct{} // closed when the connection ends
}

func newConnWatch() *connWatch { return &connWatch{ended: make(chan struct{})} }

// Ended is closed once the connection has ended.
func (w *connWatch) Ended() <-chan struct{} { return w.ended }

// HandleConn closes ended at the connection's end.
func (w *connWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnEnd); ok {
		w.once.Do(func() { close(w.ended) })
	}
}

// TagConn, TagRPC and HandleRPC complete stats.Handler; they do nothing.
func (w *connWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// TagRPC returns ctx.
func (w *connWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC does nothing.
func (w *connWatch) HandleRPC(context.Context, stats.RPCStats) {}
