package metrics

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths the endpoint serves; every other path is 404.
const (
	MetricsPath = "/metrics"
	HealthPath  = "/healthz"
)

// Limits of the endpoint's HTTP server: a client that is slow to send its request or to read the
// answer is cut off, and scrapes beyond MaxScrapesInFlight at once are refused (503).
const (
	ReadHeaderTimeout  = 5 * time.Second
	ReadTimeout        = 10 * time.Second
	WriteTimeout       = 30 * time.Second
	IdleTimeout        = 60 * time.Second
	MaxHeaderBytes     = 8 << 10
	MaxScrapesInFlight = 4
	// ScrapeTimeout bounds the gathering of one scrape (below WriteTimeout, so the client gets
	// an answer saying so rather than a cut connection).
	ScrapeTimeout = 20 * time.Second
)

// CheckAddr validates an address to serve metrics on: HOST:PORT, where HOST is an IP address, a
// host name, or empty (every interface), and PORT a number from 0 to 65535 (0 picks a free
// port, which Server.Addr reports).
func CheckAddr(addr string) error {
	const want = "want HOST:PORT, such as 127.0.0.1:9464 or :9464 (port 0 picks a free one)"
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %s: %w", addr, want, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("%q: the port %q is not a number from 0 to 65535; %s", addr, port, want)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostName(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name; %s", addr, host, want)
	}
	return nil
}

// validHostName reports whether name is a DNS host name: dot-separated labels of letters, digits
// and inner hyphens, at most 63 bytes each and 253 in all.
func validHostName(name string) bool {
	if len(name) > 253 {
		return false
	}
	label := 0
	for k := 0; k < len(name); k++ {
		c := name[k]
		switch {
		case c == '.':
			if label == 0 || name[k-1] == '-' {
				return false
			}
			label = 0
			continue
		case c == '-':
			if label == 0 {
				return false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0 && name[len(name)-1] != '-'
}

// Server is the metrics endpoint: MetricsPath in the Prometheus text format, HealthPath answering
// "ok", nothing else.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Serve checks addr (CheckAddr), listens on it and serves what g gathers until Close. A bind
// failure is returned at once, naming the address.
func Serve(addr string, g prometheus.Gatherer, logger hclog.Logger) (*Server, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics on %s: %w", addr, err)
	}
	errLog := logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn})
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            promLogger{errLog},
		MaxRequestsInFlight: MaxScrapesInFlight,
		Timeout:             ScrapeTimeout,
	}))
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          errLog,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("the metrics endpoint stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	return s, nil
}

// promLogger adapts a standard logger to promhttp's error log.
type promLogger struct{ l *log.Logger }

func (p promLogger) Println(v ...any) { p.l.Println(v...) }

// Addr is the address the endpoint listens on (with the port chosen when it was 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the endpoint: it stops accepting, lets scrapes in progress finish until ctx ends,
// then closes their connections, and waits for the server's goroutine.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return err
}
