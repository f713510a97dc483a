package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/astrid-go/astrid/shared/logtext"
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
	// Logger, if set, gets the server's warnings and errors once it runs (a client refused for
	// bad credentials, a slow consumer, a route lost), escaped, and its notices at debug level.
	// Before it runs, Listen keeps them itself, to say why the server did not start.
	Logger hclog.Logger
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
		port = server.RANDOM_PORT // nats-server's port 0 is its default, 4222
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
	errs := &startErrors{}
	s.SetLogger(errs, false, false)
	s.Start()
	for deadline := time.Now().Add(readyTimeout); !s.ReadyForConnections(50 * time.Millisecond); {
		// An error (the address in use) ends the wait: the server would only try again.
		if why, failed := errs.last(); failed || time.Now().After(deadline) {
			s.Shutdown()
			if why != "" {
				return nil, fmt.Errorf("--bus-listen %q: the NATS server did not start: %s", redactAddr(opts.Addr), why)
			}
			return nil, fmt.Errorf("--bus-listen %q: the NATS server did not start listening within %v", redactAddr(opts.Addr), readyTimeout)
		}
	}
	// From now on the server's own words go to the host's log, not to startErrors.
	if opts.Logger != nil {
		s.SetLogger(serverLog{opts.Logger}, false, false)
	} else {
		s.SetLogger(nil, false, false)
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

// readyTimeout is how long Listen waits for the server to accept connections.
const readyTimeout = 10 * time.Second

// startErrors is the embedded server's logger: it keeps the last error or warning (such as the
// address being in use), for Listen to say why the server did not start; the rest is dropped.
type startErrors struct {
	mu     sync.Mutex
	msg    string
	failed bool // an error, not only a warning
}

func (e *startErrors) keep(failed bool, format string, v []any) {
	e.mu.Lock()
	e.msg = serverLine(format, v)
	e.failed = e.failed || failed
	e.mu.Unlock()
}

// last returns the last error or warning, and whether there was an error.
func (e *startErrors) last() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.msg, e.failed
}

func (e *startErrors) Noticef(string, ...any)         {}
func (e *startErrors) Debugf(string, ...any)          {}
func (e *startErrors) Tracef(string, ...any)          {}
func (e *startErrors) Warnf(format string, v ...any)  { e.keep(false, format, v) }
func (e *startErrors) Errorf(format string, v ...any) { e.keep(true, format, v) }
func (e *startErrors) Fatalf(format string, v ...any) { e.keep(true, format, v) }

// serverLog passes the running server's log lines to the host's logger, escaped (a client's
// name or subject may be in them).
type serverLog struct{ log hclog.Logger }

func (l serverLog) Noticef(format string, v ...any) { l.log.Debug(serverLine(format, v)) }
func (l serverLog) Warnf(format string, v ...any)   { l.log.Warn(serverLine(format, v)) }
func (l serverLog) Errorf(format string, v ...any)  { l.log.Error(serverLine(format, v)) }
func (l serverLog) Fatalf(format string, v ...any)  { l.log.Error(serverLine(format, v)) }
func (l serverLog) Debugf(string, ...any)           {}
func (l serverLog) Tracef(string, ...any)           {}

// serverLine is one of the server's log lines, escaped.
func serverLine(format string, v []any) string { return logtext.Escape(fmt.Sprintf(format, v...)) }

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
