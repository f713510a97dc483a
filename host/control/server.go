package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host/internal/rundir"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/logtext"
)

// Handler performs one method: params are the request's params (nil when it had none); the
// result is encoded as the response's JSON result, an error as its error text. ctx ends when
// the server closes.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// Handlers are a server's methods by name.
type Handlers map[string]Handler

// ErrInUse is Listen's error when a live host already serves the state directory's socket.
var ErrInUse = errors.New("another host already serves this state directory's control socket")

// Server serves a host's control socket.
type Server struct {
	ln       *net.UnixListener
	path     string
	handlers Handlers
	log      hclog.Logger
	uid      int
	pid      int
	// allowDescendants lets processes the server's own process started be served (for tests
	// whose client is a child of the test binary that serves).
	allowDescendants atomic.Bool

	ctx    context.Context
	cancel context.CancelCauseFunc
	slots  chan struct{}
	// streams holds a token for each stream being served (MaxStreams).
	streams chan struct{}
	wg      sync.WaitGroup

	mu sync.Mutex
	// conns are the connections being served; true for one that carries a stream, which ends
	// itself when the server closes (with a last frame saying so) rather than being cut.
	conns map[net.Conn]bool
}

// Listen binds the control socket of stateDir (SocketPath) and serves handlers on it until
// Close. It creates STATE/run (0700) if need be, refuses a directory that is not the host
// user's own (and makes its own 0700), replaces a socket no host answers on any more, and fails
// with ErrInUse when one does.
func Listen(stateDir string, handlers Handlers, log hclog.Logger) (*Server, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	dir, err := rundir.Ensure(stateDir)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	path := filepath.Join(dir, SocketName)
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{ln: ln, path: path, handlers: handlers, log: log, uid: os.Geteuid(), pid: os.Getpid(),
		slots: make(chan struct{}, MaxConns), streams: make(chan struct{}, MaxStreams), conns: map[net.Conn]bool{}}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops accepting, ends the connections being served (a stream with a last frame saying
// the host is stopping, written within StreamEndTimeout), waits for their handlers and removes
// the socket.
func (s *Server) Close() error {
	s.cancel(ErrStopping)
	err := s.ln.Close()
	s.mu.Lock()
	for c, streaming := range s.conns {
		if streaming {
			c.SetWriteDeadline(time.Now().Add(StreamEndTimeout)) // a write blocked now ends soon
		} else {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// removeStale removes a socket at path that no host answers on, and fails with ErrInUse for
// one that a host does, or for something at path that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("exists and is not a socket (%s); remove it", fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return ErrInUse
	}
	return os.Remove(path)
}

// serve accepts connections until the listener closes.
func (s *Server) serve() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// Out of descriptors and the like: wait a little rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("control socket: accept failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		select {
		case s.slots <- struct{}{}:
		default:
			s.refuse(conn, fmt.Sprintf("busy: %d connections are being served, the most at once", MaxConns))
			continue
		}
		s.mu.Lock()
		if s.ctx.Err() != nil { // Close has begun: it may have closed the others already
			s.mu.Unlock()
			conn.Close()
			<-s.slots
			return
		}
		s.conns[conn] = false
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
			}()
			s.handle(conn)
		}()
	}
}

// refuse answers conn with an error and closes it.
func (s *Server) refuse(conn net.Conn, msg string) {
	conn.SetDeadline(time.Now().Add(IOTimeout))
	WriteFrame(conn, Response{Error: msg})
	conn.Close()
}

// handle serves one connection: the peer's user id, one request, its response (and, for a
// method that streams, the stream's frames). The request's context ends when the client closes
// the connection or sends anything more, and when the server closes.
func (s *Server) handle(conn net.Conn) {
	uid, err := shared.PeerUID(conn)
	if err != nil {
		s.log.Warn("control socket: connection refused: cannot tell who connected", "error", err)
		return
	}
	if uid != s.uid {
		s.log.Warn("control socket: connection refused: another user", "peer_uid", uid, "host_uid", s.uid)
		conn.SetDeadline(time.Now().Add(IOTimeout))
		WriteFrame(conn, Response{Error: fmt.Sprintf("refused: the host runs as uid %d and serves no other user (you are uid %d)", s.uid, uid)})
		return
	}
	if err := s.checkLineage(conn); err != nil {
		s.log.Warn("control socket: connection refused", "error", err)
		conn.SetDeadline(time.Now().Add(IOTimeout))
		WriteFrame(conn, Response{Error: "refused: " + err.Error()})
		return
	}
	conn.SetDeadline(time.Now().Add(IOTimeout))
	var req Request
	if err := ReadFrame(conn, &req); err != nil {
		s.log.Warn("control socket: bad request", "error", err)
		WriteFrame(conn, Response{Error: "bad request: " + err.Error()})
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	defer watchPeer(conn, cancel)()
	resp, stream := s.call(ctx, req)
	if stream != nil {
		s.serveStream(ctx, conn, req.Method, stream)
		return
	}
	conn.SetWriteDeadline(time.Now().Add(IOTimeout))
	if err := WriteFrame(conn, resp); err != nil {
		s.log.Warn("control socket: cannot answer", "method", logtext.Escape(req.Method), "error", err)
	}
}

// checkLineage refuses a peer that descends from the server's process: a process the host
// started, such as a capsule's shim (see lineage.go).
func (s *Server) checkLineage(conn net.Conn) error {
	if s.allowDescendants.Load() {
		return nil
	}
	pid, err := shared.PeerPID(conn)
	if err != nil || pid <= 0 {
		return fmt.Errorf("cannot tell which process connected (pid %d): %v", pid, err)
	}
	if pid == s.pid {
		return nil
	}
	below, err := descendsFrom(pid, s.pid)
	switch {
	case err != nil:
		return fmt.Errorf("cannot tell whether process %d was started by the host: %v", pid, err)
	case below:
		return fmt.Errorf("process %d was started by the host (a capsule's shim or a process a capsule spawned); the control socket serves the operator only", pid)
	}
	return nil
}

// call runs the request's method: its response, or the Stream it answers with.
func (s *Server) call(ctx context.Context, req Request) (Response, Stream) {
	h, ok := s.handlers[req.Method]
	if !ok {
		return Response{Error: fmt.Sprintf("unknown method %q; this host serves: %s", logtext.Escape(req.Method), strings.Join(s.methods(), ", "))}, nil
	}
	result, err := h(ctx, req.Params)
	if err != nil {
		return Response{Error: err.Error()}, nil
	}
	if st, ok := result.(Stream); ok {
		return Response{OK: true}, st
	}
	b, err := json.Marshal(result)
	if err != nil {
		return Response{Error: fmt.Sprintf("%s: cannot encode the result: %v", req.Method, err)}, nil
	}
	if len(b) > MaxFrameBytes-len(`{"ok":true,"result":}`) {
		return Response{Error: fmt.Sprintf("%s: the result is %d bytes of JSON, more than one response holds (%d)", req.Method, len(b), MaxFrameBytes)}, nil
	}
	return Response{OK: true, Result: b}, nil
}

func (s *Server) methods() []string {
	names := make([]string, 0, len(s.handlers))
	for n := range s.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
