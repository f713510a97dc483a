package pluginserve

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCheckEnv: what the host's go-plugin client may ask for, and what is refused.
func TestCheckEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		err  string
	}{
		{"nothing asked", nil, ""},
		{"our version offered", map[string]string{envProtocolVersions: "1"}, ""},
		{"among others", map[string]string{envProtocolVersions: "3, 1,2"}, ""},
		{"another version only", map[string]string{envProtocolVersions: "2,3"}, "protocol versions 2,3"},
		{"multiplexing off", map[string]string{envMultiplexGRPC: "false"}, ""},
		{"multiplexing", map[string]string{envMultiplexGRPC: "true"}, "multiplexing"},
		{"AutoMTLS", map[string]string{envClientCert: "PEM"}, "AutoMTLS"},
		{"socket group", map[string]string{envUnixSocketGroup: "wheel"}, "group-writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{envProtocolVersions, envMultiplexGRPC, envClientCert, envUnixSocketGroup} {
				t.Setenv(k, tc.env[k])
			}
			err := checkEnv(1)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("checkEnv = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

// serveHealth serves a health service on a unix socket in a test directory and returns its
// address; the server stops with the test.
func serveHealth(t *testing.T) string {
	l, err := listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(l) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return l.Addr().String()
}

// TestBrokerDial: Dial takes the address the host sent for its id, whether it came before or
// after Dial started waiting, and connects at the first call; a second address for the same id does not replace the first;
// an address that is not a unix socket is refused.
func TestBrokerDial(t *testing.T) {
	addr := serveHealth(t)
	check := func(t *testing.T, conn *grpc.ClientConn, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Connected at the first call, not before: a capsule that never calls the host's
		// gRPC services costs the shim and the host no connection.
		if st := conn.GetState(); st != connectivity.Idle {
			t.Errorf("before its first call the connection is %v, want %v", st, connectivity.Idle)
		}
		if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("a call on the dialled connection: %v", err)
		}
	}
	t.Run("address first", func(t *testing.T) {
		b := newBroker()
		b.received(connInfo{ServiceID: 7, Network: "unix", Address: addr})
		b.received(connInfo{ServiceID: 7, Network: "unix", Address: filepath.Join(t.TempDir(), "elsewhere")})
		conn, err := b.DialWithOptions(7)
		check(t, conn, err)
		if len(b.pending) != 0 {
			t.Errorf("the broker still holds %d addresses after the dial", len(b.pending))
		}
	})
	t.Run("dial first", func(t *testing.T) {
		b := newBroker()
		type result struct {
			conn *grpc.ClientConn
			err  error
		}
		res := make(chan result)
		go func() {
			conn, err := b.DialWithOptions(8)
			res <- result{conn, err}
		}()
		b.received(connInfo{ServiceID: 8, Network: "unix", Address: addr})
		r := <-res
		check(t, r.conn, r.err)
	})
	t.Run("not a unix socket", func(t *testing.T) {
		b := newBroker()
		b.received(connInfo{ServiceID: 9, Network: "tcp", Address: "127.0.0.1:1"})
		if conn, err := b.DialWithOptions(9); err == nil || !strings.Contains(err.Error(), "only unix sockets") {
			if conn != nil {
				conn.Close()
			}
			t.Fatalf("dialled a tcp address: %v", err)
		}
	})
}

// TestBrokerStream: addresses arriving on the broker's stream (as go-plugin's client sends
// them, field 4 included) reach Dial.
func TestBrokerStream(t *testing.T) {
	addr := serveHealth(t)
	l, err := listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	b := newBroker()
	s.RegisterService(&brokerDesc, b)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(l) }()
	defer func() { s.Stop(); <-done }()
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", l.Addr().String())
	}
	conn, err := grpc.NewClient("passthrough:///broker", grpc.WithContextDialer(dial), grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := conn.NewStream(ctx, &brokerDesc.Streams[0], "/plugin.GRPCBroker/StartStream")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&connInfoWithKnock{ServiceID: 3, Network: "unix", Address: addr, Knock: &knock{}}); err != nil {
		t.Fatal(err)
	}
	hc, err := b.DialWithOptions(3)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if _, err := healthpb.NewHealthClient(hc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a call on the dialled connection: %v", err)
	}
}
