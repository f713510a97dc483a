package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedMaxPayload is the largest message the embedded NATS server takes: 8 MiB (NATS's own
// default is 1 MiB). A guest publish larger than the server's max_payload is refused.
const EmbeddedMaxPayload = 8 << 20

// Server is a NATS server run inside astrid-host (run --bus-listen), which other hosts join
// with --bus nats://ADDR. It keeps nothing on disk (no JetStream).
type Server struct {
	s   *server.Server
	url string // for this host's own link, with the credentials
}

// ServerOptions configure Listen.
type ServerOptions struct {
	// Addr is [USER:PASSWORD@]HOST:PORT to listen on; with USER:PASSWORD, clients must give them
	// (nats://USER:PASSWORD@HOST:PORT). Port 0 picks a free port (see URL).
	Addr string
	// TLSCert and TLSKey, if set, make the server speak TLS with this certificate.
	TLSCert, TLSKey string
}

// Listen starts an embedded NATS server and waits until it accepts connections.
func Listen(opts ServerOptions) (*Server, error) {
	addr := opts.Addr
	var user, pass string
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		cred := addr[:at]
		addr = addr[at+1:]
		var ok bool
		if user, pass, ok = strings.Cut(cred, ":"); !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("--bus-listen %q: credentials must be USER:PASSWORD@HOST:PORT", redactAddr(opts.Addr))
		}
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--bus-listen %q: want [USER:PASSWORD@]HOST:PORT, e.g. 0.0.0.0:4222: %w", redactAddr(opts.Addr), err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--bus-listen %q: port %q is not a number from 0 to 65535", redactAddr(opts.Addr), portStr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port, 4222
	}
	sopts := &server.Options{
		ServerName: "astrid-host",
		Host:       host,
		Port:       port,
		Username:   user,
		Password:   pass,
		MaxPayload: EmbeddedMaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	if opts.TLSCert != "" || opts.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: opts.TLSCert, KeyFile: opts.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("--bus-listen TLS: %w", err)
		}
		sopts.TLSConfig, sopts.TLS = tc, true
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("--bus-listen %q: %w", redactAddr(opts.Addr), err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("--bus-listen %q: the NATS server did not start listening within 10s", redactAddr(opts.Addr))
	}
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		s.Shutdown()
		return nil, err
	}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return &Server{s: s, url: u.String()}, nil
}

// URL is the address this host's own link connects to (with the credentials, if any).
func (s *Server) URL() string { return s.url }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.s.Addr() }

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// redactAddr hides the password of a --bus-listen address.
func redactAddr(a string) string {
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		if user, _, ok := strings.Cut(a[:at], ":"); ok {
			return user + ":xxxxx@" + a[at+1:]
		}
	}
	return a
}
