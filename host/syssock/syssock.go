// Package syssock is the host's CLI socket, upstream's system.sock: a unix socket in
// STATE/run that clients of the same user connect to, authenticated by a session token the
// host writes next to it, and handed to the capsules that declare [capabilities] net_bind
// (astrid_net_accept and friends). It owns the socket's rules: where it lives, who may hold it
// (one host per state directory, by a lock), the peer uid check, the token handshake and the
// frames (4-byte big-endian length, then the bytes). Clients use Dial.
package syssock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/host/internal/rundir"
)

// Names in STATE/run.
const (
	// RunDirName is the directory, under the state directory, of the host's sockets (0700).
	RunDirName = rundir.Name
	// SocketName is the CLI socket (0600).
	SocketName = "system.sock"
	// TokenName is the session token file (0600): 64 hex characters, new at every bind.
	TokenName = "system.token"
	// LockName is the lock file the host holding the socket keeps locked (flock).
	LockName = "system.lock"
)

// MaxSocketPathBytes is the longest socket path the kernel accepts, less its terminating NUL:
// sun_path is 108 bytes on Linux.
const MaxSocketPathBytes = 107

// RunDir is STATE/run.
func RunDir(stateDir string) string { return rundir.Path(stateDir) }

// SocketPath is STATE/run/system.sock.
func SocketPath(stateDir string) string { return filepath.Join(RunDir(stateDir), SocketName) }

// TokenPath is STATE/run/system.token.
func TokenPath(stateDir string) string { return filepath.Join(RunDir(stateDir), TokenName) }

// EnsureRunDir creates STATE/run (0700) if needed and checks that it is a real directory owned
// by this user, not a symlink, and private (see package rundir, its one owner). It returns its
// path.
func EnsureRunDir(stateDir string) (string, error) { return rundir.Ensure(stateDir) }

// Server is the bound socket of one host. Its connections are taken with Next, checked with
// Authenticate, and the whole is released by Close.
type Server struct {
	path, tokenPath string
	token           []byte
	version         string
	ln              *net.UnixListener
	lock            *os.File
	conns           chan accepted
	done            chan struct{}
	closeOnce       sync.Once
	wg              sync.WaitGroup
}

// accepted is one result of the listener's accept loop.
type accepted struct {
	conn *net.UnixConn
	err  error
}

// Listen binds STATE/run/system.sock for this host and writes a fresh session token to
// STATE/run/system.token. Another live host holding the socket (its lock) is refused, naming
// it; a socket left by a host that died is removed first. serverVersion is what handshake
// responses report.
func Listen(stateDir, serverVersion string) (*Server, error) {
	dir, err := EnsureRunDir(stateDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, SocketName)
	if len(path) > MaxSocketPathBytes {
		return nil, fmt.Errorf("the socket path %s is %d bytes, over the platform limit of %d bytes; use a shorter state directory (--state)", path, len(path), MaxSocketPathBytes)
	}
	lock, err := lockFile(filepath.Join(dir, LockName))
	if err != nil {
		return nil, err
	}
	s := &Server{path: path, tokenPath: filepath.Join(dir, TokenName), version: serverVersion, lock: lock,
		conns: make(chan accepted), done: make(chan struct{})}
	if err := s.bind(); err != nil {
		lock.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// lockFile takes the lock that makes this host the socket's only holder.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the socket lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another astrid-host holds the CLI socket %s (its lock %s is taken); stop it or use another --state", filepath.Join(filepath.Dir(path), SocketName), path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// bind removes what a dead host left at the socket path (the lock says none is alive), binds
// the socket 0600 and writes the token.
func (s *Server) bind() error {
	if fi, err := os.Lstat(s.path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory; remove it", s.path)
		}
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("remove the stale socket %s: %w", s.path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("socket path: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("bind the CLI socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(s.path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("make the CLI socket private: %w", err)
	}
	token := make([]byte, TokenHexLen/2)
	if _, err := rand.Read(token); err != nil {
		ln.Close()
		return fmt.Errorf("generate the session token: %w", err)
	}
	if err := writeToken(s.tokenPath, hex.EncodeToString(token)); err != nil {
		ln.Close()
		return err
	}
	s.ln, s.token = ln, token
	return nil
}

// writeToken writes the token 0600 to a temporary file and renames it into place, so a reader
// never sees a partial token.
func writeToken(path, hexToken string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write the session token: %w", err)
	}
	_, err = f.WriteString(hexToken)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write the session token: %w", err)
	}
	return nil
}

// acceptLoop accepts connections and hands each to one taker (Next); it ends when the server
// closes, closing a connection nobody took.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
		select {
		case s.conns <- accepted{c, err}:
		case <-s.done:
			if c != nil {
				c.Close()
			}
			return
		}
	}
}

// ErrNoConnection is Next's answer when no connection came within its wait.
var ErrNoConnection = errors.New("no connection is waiting")

// ErrStopped is Next's answer when stop closed or ctx ended, or the server closed.
var ErrStopped = errors.New("stopped")

// Next takes the next connection, not yet checked (see Authenticate). It waits until one comes,
// ctx ends or stop is closed (ErrStopped), or, when wait is positive, for at most wait
// (ErrNoConnection). An error of the listener itself (too many open files) is returned as is.
func (s *Server) Next(ctx context.Context, stop <-chan struct{}, wait time.Duration) (*net.UnixConn, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case a := <-s.conns:
		return a.conn, a.err
	case <-ctx.Done():
		return nil, ErrStopped
	case <-stop:
		return nil, ErrStopped
	case <-s.done:
		return nil, ErrStopped
	case <-timeout:
		return nil, ErrNoConnection
	}
}

// Authenticate checks a connection as upstream's accept does: the peer's uid must be the
// host's effective uid (checked first, so another user cannot hold the handshake's 5 s), then
// the client's handshake must carry the session token. It returns the client's version, or why
// the connection is refused; the caller closes a refused connection. ctx ending or stop closing
// ends the handshake at once (ErrStopped).
func (s *Server) Authenticate(ctx context.Context, stop <-chan struct{}, conn *net.UnixConn) (string, error) {
	if err := CheckPeer(conn); err != nil {
		return "", err
	}
	finished, watcherDone := make(chan struct{}), make(chan struct{})
	var cancelled atomic.Bool
	go func() {
		defer close(watcherDone)
		select {
		case <-finished:
			return
		case <-ctx.Done():
		case <-stop:
		case <-s.done:
		}
		cancelled.Store(true)
		conn.Close() // ends the handshake's read or write at once
	}()
	version, err := serverHandshake(conn, s.token, s.version)
	close(finished)
	<-watcherDone
	if cancelled.Load() {
		return "", ErrStopped
	}
	return version, err
}

// CheckPeer refuses a connection whose peer runs as another user than the host's effective
// uid (SO_PEERCRED), with upstream's reason.
func CheckPeer(conn *net.UnixConn) error {
	uid, err := PeerUID(conn)
	if err != nil {
		return fmt.Errorf("failed to check peer credentials: %w", err)
	}
	if mine := uint32(os.Geteuid()); uid != mine {
		return fmt.Errorf("peer UID %d does not match daemon UID %d", uid, mine)
	}
	return nil
}

// PeerUID is the uid of the process at the other end of conn, as the kernel recorded it when it
// connected (SO_PEERCRED).
func PeerUID(conn *net.UnixConn) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return cred.Uid, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// TokenPath is the token file's path.
func (s *Server) TokenPath() string { return s.tokenPath }

// Close stops accepting, closes a connection accepted but not taken, removes the socket and
// the token file and releases the lock. Connections already taken are their takers' to close.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ln.Close() // removes the socket file
		s.wg.Wait()
		os.Remove(s.tokenPath)
		s.lock.Close()
	})
}

// Dial connects to the CLI socket of the host running on stateDir and performs the handshake
// with the token it reads from STATE/run/system.token. The connection then carries frames
// (WriteFrame, ReadFrame) to and from the capsule that accepted it.
func Dial(ctx context.Context, stateDir, clientVersion string) (*net.UnixConn, error) {
	token, err := ReadToken(TokenPath(stateDir))
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", SocketPath(stateDir))
	if err != nil {
		return nil, fmt.Errorf("connect to the host's socket: %w", err)
	}
	conn := c.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = ClientHandshake(conn, token, clientVersion)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// readFull is io.ReadFull.
func readFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
