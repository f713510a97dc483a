package callwire

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/astrid-go/astrid/shared/pb"
)

// The host's health check of a shim goes on the call connection: a Ping frame (no body), which
// the shim's reader answers with a Pong (pb.HealthResponse) built in a buffer the ShimEnd keeps.
// It used to be a gRPC unary call, which left ~5 KB of garbage in the shim each time; an idle
// shim that answers pings allocates nothing, so it never has garbage to collect, and a shim
// that never collected does not map the collector's own structures (~1 MB) nor get the
// runtime's forced collection every 2 minutes (which only follows a first one).

// Health is a shim's answer to a Ping.
type Health struct {
	// Loaded says a module is loaded.
	Loaded bool
	// Calls counts the guest calls the shim has completed.
	Calls uint64
	// Busy says a guest call (or a run loop) holds the Store: the shim answered, and the call's
	// own deadline watches the guest.
	Busy bool
}

// maxPongBytes bounds a Pong's body: pb.HealthResponse's three fields take at most 15 bytes.
const maxPongBytes = 32

// The field numbers of pb.HealthResponse.
const (
	fieldHealthLoaded protowire.Number = 1
	fieldHealthCalls  protowire.Number = 2
	fieldHealthBusy   protowire.Number = 3
)

// appendHealth appends h encoded as proto.Marshal encodes the pb.HealthResponse it stands for
// (zero fields left out), without allocating when b has room.
func appendHealth(b []byte, h Health) []byte {
	if h.Loaded {
		b = protowire.AppendTag(b, fieldHealthLoaded, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if h.Calls != 0 {
		b = protowire.AppendTag(b, fieldHealthCalls, protowire.VarintType)
		b = protowire.AppendVarint(b, h.Calls)
	}
	if h.Busy {
		b = protowire.AppendTag(b, fieldHealthBusy, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

// PingFunc answers the host's Ping id on the goroutine that read it, which must neither wait nor
// allocate: the shim's health and true, or false when the answer needs a wait; the shim then
// answers later, exactly once, with ShimEnd.Pong.
type PingFunc func(id uint64) (h Health, now bool)

// HandlePings makes the ShimEnd answer the host's pings with ping; call it before Serve. Without
// it a ping is answered with a zero Health (alive, nothing loaded).
func (e *ShimEnd) HandlePings(ping PingFunc) { e.ping = ping }

// Pong answers the host's Ping id with h. Any goroutine may call it; it allocates nothing.
func (e *ShimEnd) Pong(id uint64, h Health) error {
	e.pongMu.Lock()
	defer e.pongMu.Unlock()
	return e.c.WriteFrameBuffer(Pong, id, appendHealth(e.pong[:HeaderBytes], h))
}

// handlePing answers the Ping id (no body) at once, unless the PingFunc leaves it for later.
func (e *ShimEnd) handlePing(id uint64, body []byte) error {
	if len(body) != 0 {
		return fmt.Errorf("a %s frame with a %d-byte body (it has none)", Ping, len(body))
	}
	h, now := Health{}, true
	if e.ping != nil {
		h, now = e.ping(id)
	}
	if now {
		_ = e.Pong(id, h) // (a write that fails ends the connection: its reader sees why)
	}
	return nil
}

// Ping asks the shim whether it is alive and its Store usable: it sends a Ping and waits for the
// Pong, or for ctx to end (the ping is abandoned: a late Pong is dropped), or for the connection
// to end (Unavailable: the shim is gone). The errors are gRPC statuses, as the unary RPC this
// replaces gave. The Ping is written without waiting for the shim to read (a shim that stopped
// reading with its pipe full still leaves the caller its deadline), and the Pong is read by
// whichever goroutine reads the connection (Serve's, while no call runs).
func (e *HostEnd) Ping(ctx context.Context) (Health, error) {
	id, ch, err := e.pings.send(func(id uint64) error {
		e.c.WriteEmptyFrameNoWait(Ping, id, func(err error) {
			if err != nil {
				e.pings.deliver(id, answer[Health]{err: unavailable(err)})
			}
		})
		return nil
	})
	if err != nil {
		return Health{}, err
	}
	select {
	case a := <-ch:
		return a.resp, a.err
	case <-ctx.Done():
		return e.pings.abandon(ctx, id, nil)
	}
}

// handlePong hands a Pong to the Ping waiting for it. A Pong for a ping never sent, or one that
// is too large or does not decode, is a violation.
func (e *HostEnd) handlePong(id uint64, body []byte) error {
	if len(body) > maxPongBytes {
		return e.violation(fmt.Errorf("a %s frame of %d bytes (at most %d)", Pong, len(body), maxPongBytes))
	}
	m := &pb.HealthResponse{}
	if err := Decode(Pong, body, m); err != nil {
		return e.violation(err)
	}
	waited, sent := e.pings.deliver(id, answer[Health]{resp: Health{Loaded: m.Loaded, Calls: m.Calls, Busy: m.Busy}})
	if !waited && !sent {
		return e.violation(fmt.Errorf("a %s frame for ping %d, which the host never sent", Pong, id))
	} // (a pong nobody waits for answers an abandoned ping)
	return nil
}
