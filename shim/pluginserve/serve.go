// Package pluginserve serves the plugin side of hashicorp/go-plugin's gRPC protocol (as of
// go-plugin v1.8) for the shim, without linking go-plugin into it: the host keeps go-plugin's
// client, and the shim speaks to it what go-plugin's Serve would.
//
// Why: go-plugin's server registers gRPC's reflection service, whose package (protodesc)
// unmarshals the protobuf editions' defaults at start-up, which builds descriptor.proto's whole
// descriptor; it replaces os.Stdout and os.Stderr with pipes streamed to the host (two reader
// goroutines and a stream, which the host discards); and it watches SIGINT with signal.Notify
// (two goroutines, each holding a thread). An idle shim held ~0.3 MB more PSS with it
// (BenchmarkIdleMemory, docs/architecture.md "Idle memory").
//
// What the host's go-plugin client uses, and is served here: the handshake line on stdout; the
// health service ("plugin" SERVING, go-plugin's Ping); the broker's stream, on which the host
// sends the address of each service it serves for the shim (GRPCBroker.AcceptAndServe), which
// Broker.DialWithOptions waits for; the controller's Shutdown (go-plugin's graceful Kill), which
// stops the server; the stdio stream, which ends at once (nothing is streamed: the shim's stdout
// is the handshake's, its stderr the log the host relays). Broker multiplexing and AutoMTLS are
// not supported; the host uses neither.
package pluginserve

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Environment variables go-plugin's client sets for the plugin (go-plugin's names).
const (
	envProtocolVersions = "PLUGIN_PROTOCOL_VERSIONS"
	envUnixSocketDir    = "PLUGIN_UNIX_SOCKET_DIR"
	envUnixSocketGroup  = "PLUGIN_UNIX_SOCKET_GROUP"
	envMultiplexGRPC    = "PLUGIN_MULTIPLEX_GRPC"
	envClientCert       = "PLUGIN_CLIENT_CERT"
)

// coreProtocolVersion is go-plugin's own protocol version, the handshake line's first field.
const coreProtocolVersion = 1

// healthService is the service name go-plugin's client checks (plugin.GRPCServiceName).
const healthService = "plugin"

// Config is what Serve needs.
type Config struct {
	// ProtocolVersion, CookieKey and CookieValue are the application's handshake (go-plugin's
	// HandshakeConfig): the host must have set CookieKey to CookieValue and offer ProtocolVersion.
	ProtocolVersion uint
	CookieKey       string
	CookieValue     string
	// NewServer builds the gRPC server; it decides which connections are served.
	NewServer func([]grpc.ServerOption) *grpc.Server
	// Register registers the plugin's own services on s; broker dials the host's services.
	Register func(s *grpc.Server, broker *Broker)
}

// Serve checks the handshake, listens on a unix socket in the socket directory the host chose
// (PLUGIN_UNIX_SOCKET_DIR, else TMPDIR), writes the handshake line on stdout and serves until the
// host shuts the server down (or the listener fails). It returns an error only when it could not
// start.
func Serve(cfg Config) error {
	if cfg.CookieKey == "" || os.Getenv(cfg.CookieKey) != cfg.CookieValue {
		return errors.New("this binary is started by its host, not by hand (handshake cookie missing)")
	}
	if err := checkEnv(cfg.ProtocolVersion); err != nil {
		return err
	}
	l, err := listen(os.Getenv(envUnixSocketDir))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	s := cfg.NewServer(nil)
	hs := health.NewServer()
	hs.SetServingStatus(healthService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	broker := newBroker()
	s.RegisterService(&brokerDesc, broker)
	s.RegisterService(&controllerDesc, &controller{stop: s.Stop})
	s.RegisterService(&stdioDesc, struct{}{})
	cfg.Register(s, broker)
	// go-plugin's plugins ignore SIGINT (a terminal's ^C reaches the whole foreground group; the
	// host decides when its shims stop). Ignoring it costs no goroutine, unlike signal.Notify.
	signal.Ignore(os.Interrupt)
	line := fmt.Sprintf("%d|%d|%s|%s|grpc|", coreProtocolVersion, cfg.ProtocolVersion, l.Addr().Network(), l.Addr().String())
	if os.Getenv(envMultiplexGRPC) != "" {
		line += "|false" // the seventh field: no broker multiplexing
	}
	if _, err := fmt.Fprintln(os.Stdout, line); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := s.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// checkEnv refuses what the host asks for that this server does not speak.
func checkEnv(version uint) error {
	if vs := os.Getenv(envProtocolVersions); vs != "" {
		ok := false
		for _, v := range strings.Split(vs, ",") {
			ok = ok || strings.TrimSpace(v) == strconv.FormatUint(uint64(version), 10)
		}
		if !ok {
			return fmt.Errorf("the host speaks protocol versions %s, this binary %d", vs, version)
		}
	}
	if m, _ := strconv.ParseBool(os.Getenv(envMultiplexGRPC)); m {
		return errors.New("the host asks for gRPC broker multiplexing, which this binary does not serve")
	}
	if os.Getenv(envClientCert) != "" {
		return errors.New("the host asks for AutoMTLS, which this binary does not serve")
	}
	if os.Getenv(envUnixSocketGroup) != "" {
		return errors.New("the host asks for a group-writable socket, which this binary does not make")
	}
	return nil
}

// listen makes the server's unix socket in dir (TMPDIR if empty) under a fresh name, as go-plugin
// does; closing the listener removes it.
func listen(dir string) (net.Listener, error) {
	f, err := os.CreateTemp(dir, "plugin")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	f.Close()
	if err := os.Remove(path); err != nil {
		return nil, err
	}
	return net.Listen("unix", path)
}
