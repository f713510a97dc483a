package shared

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// Every connection between the host and a shim is bound to one instance, in both directions.
//
// The sockets are unix sockets in directories every process of the host's user can reach (a
// sandboxed shim or a spawned process still connects to a path it knows: neither landlock nor a
// read-only mount stops connect(2)), so a socket's path is no secret and its mode no barrier.
// Each side therefore checks who is at the other end of every connection it accepts, before gRPC
// reads a byte from it:
//
//   - the host's services for one instance (served through go-plugin's broker) accept only the
//     process whose pid is that instance's shim, as the kernel reports it (SO_PEERCRED, which
//     translates the pid into the host's pid namespace). The sandbox helper execs the shim, so the
//     pid the host started is the shim's. A shim that dials another instance's services is
//     refused, and the host is told who it was (see ServeHostServices);
//   - a shim's own server (which the host dials: Load, Invoke, ...) accepts only a connection that
//     first sends the token the host made for that shim. The shim knows only the token's SHA-256
//     (from its environment, which other processes of the user may read); the token itself
//     exists in the host's memory and on that one connection. The peer's pid cannot serve here:
//     in its own pid namespace the shim sees the host, and every other sandboxed shim, as pid 0.

// TokenBytes is the length of the token the host proves itself with to one shim.
const TokenBytes = 32

// EnvShimHostTokenSHA256 carries the hex SHA-256 of the token the host sends first on every
// connection to the shim's server (see ShimServer).
const EnvShimHostTokenSHA256 = "ASTRID_SHIM_HOST_TOKEN_SHA256"

// HandshakeTimeout bounds how long a shim waits for a new connection's token.
const HandshakeTimeout = 10 * time.Second

// PeerPID returns the pid of the process at the other end of a unix socket connection, as the
// kernel recorded it when that process connected, translated into the caller's pid namespace (0
// when the peer is outside it).
func PeerPID(conn net.Conn) (int, error) {
	cred, err := peerCred(conn)
	if err != nil {
		return 0, err
	}
	return int(cred.Pid), nil
}

// PeerUID returns the user id of the process at the other end of a unix socket connection, as
// the kernel recorded it when that process connected (SO_PEERCRED): what a local control socket
// checks before it reads a byte.
func PeerUID(conn net.Conn) (int, error) {
	cred, err := peerCred(conn)
	if err != nil {
		return 0, err
	}
	return int(cred.Uid), nil
}

// peerCred returns the SO_PEERCRED credentials of a unix socket connection's peer.
func peerCred(conn net.Conn) (*unix.Ucred, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("peer credentials: %T is not a socket", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("peer credentials: %w", serr)
	}
	return cred, nil
}

// peerAuth is what the handshakes below tell gRPC about a connection: no transport security
// (a unix socket on one machine), only an authenticated peer.
type peerAuth struct {
	credentials.CommonAuthInfo
	kind string
}

func (a peerAuth) AuthType() string { return a.kind }

func newPeerAuth(kind string) peerAuth {
	return peerAuth{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, kind: kind}
}

// errClientOnly and errServerOnly answer the half of a handshake a credential is not made for.
var (
	errClientOnly = errors.New("astrid: these credentials only dial")
	errServerOnly = errors.New("astrid: these credentials only accept")
)

// acceptChecked is a server's transport credentials: check decides on every accepted connection,
// before gRPC reads from it. A refused connection is closed and refused is told why, with the
// peer's pid as this process sees it (0 if unknown or outside its pid namespace).
type acceptChecked struct {
	protocol string
	check    func(conn net.Conn) (peerPID int, err error)
	refused  func(peerPID int, err error)
}

// onlyPID accepts only connections from process pid: a host's services for one shim.
func onlyPID(pid int, refused func(peerPID int, err error)) *acceptChecked {
	return &acceptChecked{protocol: "astrid-shim-pid", refused: refused, check: func(conn net.Conn) (int, error) {
		peer, err := PeerPID(conn)
		if err == nil && peer != pid {
			err = fmt.Errorf("the peer is pid %d, not the instance's shim (pid %d)", peer, pid)
		}
		return peer, err
	}}
}

// onlyToken accepts only connections that first send the token whose SHA-256 is sum: a shim's
// server, for the host that started it.
func onlyToken(sum [sha256.Size]byte, refused func(peerPID int, err error)) *acceptChecked {
	return &acceptChecked{protocol: "astrid-host-token", refused: refused, check: func(conn net.Conn) (int, error) {
		var token [TokenBytes]byte
		conn.SetReadDeadline(time.Now().Add(HandshakeTimeout))
		_, err := io.ReadFull(conn, token[:])
		conn.SetReadDeadline(time.Time{})
		if err != nil {
			err = fmt.Errorf("the peer did not send the host's token: %w", err)
		} else if got := sha256.Sum256(token[:]); subtle.ConstantTimeCompare(got[:], sum[:]) != 1 {
			err = errors.New("the peer did not send the host's token")
		}
		if err != nil {
			pid, _ := PeerPID(conn)
			return pid, err
		}
		return 0, nil
	}}
}

func (c *acceptChecked) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if pid, err := c.check(conn); err != nil {
		conn.Close()
		if c.refused != nil {
			c.refused(pid, err)
		}
		return nil, nil, err
	}
	return conn, newPeerAuth(c.protocol), nil
}

func (c *acceptChecked) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (c *acceptChecked) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: c.protocol}
}

func (c *acceptChecked) Clone() credentials.TransportCredentials { cp := *c; return &cp }

func (c *acceptChecked) OverrideServerName(string) error { return nil }

// hostTokenCreds is the host's side of a connection to one shim's server: it sends the token.
type hostTokenCreds struct {
	token [TokenBytes]byte
}

func (c *hostTokenCreds) ClientHandshake(ctx context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetWriteDeadline(d)
		defer conn.SetWriteDeadline(time.Time{})
	}
	if _, err := conn.Write(c.token[:]); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("send the host's token to the shim: %w", err)
	}
	return conn, newPeerAuth("astrid-host-token"), nil
}

func (c *hostTokenCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errClientOnly
}

func (c *hostTokenCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "astrid-host-token"}
}

func (c *hostTokenCreds) Clone() credentials.TransportCredentials { cp := *c; return &cp }

func (c *hostTokenCreds) OverrideServerName(string) error { return nil }

// newHostToken makes the token for one shim: the host's credentials, and the environment entry
// that tells the shim what to expect.
func newHostToken() (*hostTokenCreds, string) {
	c := &hostTokenCreds{}
	rand.Read(c.token[:]) // never fails (crypto/rand)
	sum := sha256.Sum256(c.token[:])
	return c, EnvShimHostTokenSHA256 + "=" + hex.EncodeToString(sum[:])
}

// shimTokenFromEnv reads the SHA-256 of the host's token from the shim's environment.
func shimTokenFromEnv() ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	v := os.Getenv(EnvShimHostTokenSHA256)
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != sha256.Size {
		return sum, fmt.Errorf("%s is %q; want the 64 hex digits astrid-host sets (start the shim through astrid-host)", EnvShimHostTokenSHA256, v)
	}
	copy(sum[:], b)
	return sum, nil
}

// HostToken makes the token for one shim (see shared/goplugin.ClientConfig): the host's
// credentials for the shim's server, and the environment entry that tells the shim what to expect.
func HostToken() (credentials.TransportCredentials, string) { return newHostToken() }

// OnlyPID returns server credentials that accept only connections from process pid (see
// shared/goplugin.ShimClient.ServeHostServices); refused is told of any other.
func OnlyPID(pid int, refused func(peerPID int, err error)) credentials.TransportCredentials {
	return onlyPID(pid, refused)
}
