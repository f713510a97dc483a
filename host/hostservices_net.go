package host

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"unicode/utf8"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/syssock"
	"github.com/astrid-go/astrid/shared/logtext"
	"github.com/astrid-go/astrid/shared/pb"
)

// astrid_net_bind_unix, _accept, _poll_accept, _read, _write, _close_stream: the CLI socket
// (package syssock) as upstream's net.rs serves it. Only a capsule whose manifest lists
// something in [capabilities] net_bind is given the socket; a client must run as the host's
// user and open with the session token's handshake; the streams are the instance's
// (instanceNet).

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_NET_BIND_UNIX] = astridNetBindUnix
	hostCallHandlers[pb.HostOp_HOST_OP_NET_ACCEPT] = astridNetAccept
	hostCallHandlers[pb.HostOp_HOST_OP_NET_POLL_ACCEPT] = astridNetPollAccept
	hostCallHandlers[pb.HostOp_HOST_OP_NET_READ] = astridNetRead
	hostCallHandlers[pb.HostOp_HOST_OP_NET_WRITE] = astridNetWrite
	hostCallHandlers[pb.HostOp_HOST_OP_NET_CLOSE_STREAM] = astridNetCloseStream
}

// Topics of the socket's events, published with the accepting instance as source.
const (
	// TopicClientConnected is published when a capsule accepts an authenticated connection.
	TopicClientConnected = "client.v1.connected"
	// TopicClientDisconnect is published when a capsule closes a stream it held.
	TopicClientDisconnect = "client.v1.disconnect"
)

// Upstream's IpcPayload::Connect and Disconnect{reason: "stream_closed"}.
var (
	connectPayload         = json.RawMessage(`{"type":"connect"}`)
	streamClosedDisconnect = json.RawMessage(`{"type":"disconnect","reason":"stream_closed"}`)
)

// netBindGranted is upstream's check_net_bind: some net_bind entry is not empty.
func (i *Instance) netBindGranted() bool {
	for _, e := range i.manifest.Capabilities.NetBind {
		if e != "" {
			return true
		}
	}
	return false
}

// netSocket is the CLI socket the instance may accept on: only a capsule that lists something
// in net_bind is given it (even an empty entry, as upstream; bind then refuses).
func (i *Instance) netSocket() (*syssock.Server, error) {
	if len(i.manifest.Capabilities.NetBind) == 0 {
		return nil, guestFailed("No CLI Socket Listener available in HostState")
	}
	s, err := i.host.cliSocket()
	if err != nil {
		return nil, guestFailed("%s", err)
	}
	return s, nil
}

// astridNetBindUnix: astrid_net_bind_unix(path, ignored) → the bare i64 1 once the capsule's
// net_bind is checked; the socket is already bound by the host.
func astridNetBindUnix(_ context.Context, s *hostServices, _ [][]byte) ([]byte, error) {
	if !s.inst.netBindGranted() {
		return nil, guestFailed("security denied net_bind: capsule '%s' denied: net_bind not declared in manifest", s.inst.ID())
	}
	return []byte("1"), nil
}

// astridNetAccept: astrid_net_accept(listener, ignored) → the decimal handle of the next
// connection that passes the peer and token checks; connections that fail them are dropped (and
// logged) and the wait goes on. Over MaxNetStreams it traps at once with upstream's text; the
// capsule unloading ends the wait with the trap "capsule unloading".
func astridNetAccept(ctx context.Context, s *hostServices, _ [][]byte) ([]byte, error) {
	n := &s.inst.net
	if c := n.count(); c >= MaxNetStreams {
		s.inst.log.Warn("accept: connection cap reached, rejecting", "max", MaxNetStreams, "current", c)
		return nil, netCapReached(c)
	}
	sock, err := s.inst.netSocket()
	if err != nil {
		return nil, err
	}
	stop := n.doneChan()
	for {
		conn, err := sock.Next(ctx, stop, 0)
		switch {
		case errors.Is(err, syssock.ErrStopped):
			return nil, errNetUnloading
		case err != nil:
			return nil, guestFailed("%s", err)
		}
		if h, ok, err := s.admitConn(ctx, sock, conn, "accept"); ok || err != nil {
			return h, err
		}
	}
}

// astridNetPollAccept: astrid_net_poll_accept(listener, ignored) → a handle as accept gives, or
// "" when no connection came within 10 ms, the cap is reached, the connection failed its checks
// or the capsule is unloading.
func astridNetPollAccept(ctx context.Context, s *hostServices, _ [][]byte) ([]byte, error) {
	sock, err := s.inst.netSocket()
	if err != nil {
		return nil, err
	}
	n := &s.inst.net
	if c := n.count(); c >= MaxNetStreams {
		s.inst.log.Warn("poll_accept: connection cap reached, rejecting", "max", MaxNetStreams, "current", c)
		return []byte{}, nil
	}
	conn, err := sock.Next(ctx, n.doneChan(), netPollAcceptWait)
	switch {
	case errors.Is(err, syssock.ErrStopped), errors.Is(err, syssock.ErrNoConnection):
		return []byte{}, nil
	case err != nil:
		return nil, guestFailed("accept error: %s", err)
	}
	h, ok, err := s.admitConn(ctx, sock, conn, "poll_accept")
	switch {
	case ok:
		return h, nil
	case errors.Is(err, errNetHandleSpace):
		return nil, err
	default:
		// Refused by its checks, the cap reached meanwhile, or unloading: "" as upstream.
		return []byte{}, nil
	}
}

// admitConn checks a connection (peer uid, handshake) and stores it as one of the instance's
// streams, publishing client.v1.connected. ok is false, with no error, for a connection refused
// by its checks (it is closed and logged); err is the guest's failure.
func (s *hostServices) admitConn(ctx context.Context, sock *syssock.Server, conn *net.UnixConn, fn string) (handle []byte, ok bool, err error) {
	n := &s.inst.net
	version, err := sock.Authenticate(ctx, n.doneChan(), conn)
	switch {
	case errors.Is(err, syssock.ErrStopped):
		conn.Close()
		return nil, false, errNetUnloading
	case err != nil:
		conn.Close()
		s.inst.log.Warn(fn+": rejected socket connection", "security_event", true, "reason", logtext.Escape(err.Error()))
		return nil, false, nil
	}
	h, err := n.add(conn)
	if err != nil {
		return nil, false, err
	}
	s.inst.log.Info("socket handshake succeeded", "client_version", logtext.Escape(version), "stream", h)
	s.inst.host.bus.Publish(bus.Message{Topic: TopicClientConnected, Payload: connectPayload, SourceID: s.inst.ipc.sourceID})
	return strconv.AppendUint(nil, h, 10), true, nil
}

// astridNetRead: astrid_net_read(handle) → a status byte (0x00 data, 0x01 closed, 0x02
// pending) followed, for data, by the next frame.
func astridNetRead(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	n := &s.inst.net
	_, st, err := n.lookup(args[0])
	if err != nil {
		return nil, err
	}
	status, body, err := st.read(ctx, n.doneChan())
	if err != nil {
		if n.isClosed() {
			return []byte{netReadPending}, nil
		}
		return nil, err
	}
	out := make([]byte, 0, 1+len(body))
	return append(append(out, status), body...), nil
}

// astridNetWrite: astrid_net_write(handle, data) sends data as one frame. A failed write (the
// client has gone) is only logged, as upstream; the capsule unloading meanwhile traps
// "capsule unloading".
func astridNetWrite(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	n := &s.inst.net
	h, st, err := n.lookup(args[0])
	if err != nil {
		return nil, err
	}
	interrupted, err := st.write(ctx, n.doneChan(), args[1])
	if interrupted || n.isClosed() {
		return nil, errNetUnloading
	}
	if err != nil {
		s.inst.log.Debug("net write failed, client likely disconnected", "stream", h, "error", err.Error())
	}
	return nil, nil
}

// astridNetCloseStream: astrid_net_close_stream(handle) closes the stream and publishes
// client.v1.disconnect; a handle that is not open is ignored (idempotent).
func astridNetCloseStream(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	h, err := parseNetHandle(args[0])
	if err != nil {
		return nil, err
	}
	if s.inst.net.remove(h) {
		s.inst.host.bus.Publish(bus.Message{Topic: TopicClientDisconnect, Payload: streamClosedDisconnect, SourceID: s.inst.ipc.sourceID})
	}
	return nil, nil
}

// parseNetHandle parses a stream handle as upstream does: the block must be UTF-8 (its
// get_safe_string), then a u64 (Rust's parsing: decimal digits, an optional leading '+'), else
// "Invalid stream handle".
func parseNetHandle(raw []byte) (uint64, error) {
	if !utf8.Valid(raw) {
		return 0, guestFailed("%s", rustUTF8Error(raw))
	}
	digits := string(raw)
	if len(digits) > 1 && digits[0] == '+' {
		digits = digits[1:]
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, guestFailed("Invalid stream handle")
		}
	}
	h, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, guestFailed("Invalid stream handle")
	}
	return h, nil
}
