package shared

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// refusals records what a server's credentials refused.
type refusals struct {
	mu   sync.Mutex
	pids []int
	errs []string
}

func (r *refusals) add(pid int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids = append(r.pids, pid)
	r.errs = append(r.errs, err.Error())
}

func (r *refusals) get() ([]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.pids...), append([]string(nil), r.errs...)
}

// serve runs s (with a health service) on a fresh unix socket.
func serve(t *testing.T, s *grpc.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(s, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return path
}

// check makes one RPC to the server at path with creds.
func check(path string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient("passthrough:///"+path, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestShimTokenCreds: a shim's server accepts the host that started it (the token whose SHA-256
// is in its environment) and refuses anyone else before gRPC reads a byte.
func TestShimTokenCreds(t *testing.T) {
	defer goleak.VerifyNone(t)
	host, env := newHostToken()
	sum, _ := strings.CutPrefix(env, EnvShimHostTokenSHA256+"=")
	t.Setenv(EnvShimHostTokenSHA256, sum)
	other, _ := newHostToken()
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"the host's token", host, true},
		{"another host's token", other, false},
		{"no token (plain gRPC)", insecure.NewCredentials(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r refusals
			newServer, err := ShimServer(r.add)
			if err != nil {
				t.Fatal(err)
			}
			path := serve(t, newServer(nil))
			err = check(path, tc.creds)
			pids, errs := r.get()
			if tc.ok != (err == nil) || tc.ok != (len(pids) == 0) {
				t.Fatalf("RPC: %v; refusals: %v %v", err, pids, errs)
			}
			if !tc.ok && (pids[0] != os.Getpid() || !strings.Contains(errs[0], "did not send the host's token")) {
				t.Fatalf("refusal: pid %d (want %d), %s", pids[0], os.Getpid(), errs[0])
			}
		})
	}
}

// TestShimServerNoToken: a shim started without the host's token refuses to serve at all.
func TestShimServerNoToken(t *testing.T) {
	for _, v := range []string{"", "xyz", strings.Repeat("0", 63)} {
		t.Setenv(EnvShimHostTokenSHA256, v)
		if _, err := ShimServer(nil); err == nil || !strings.Contains(err.Error(), "want the 64 hex digits") {
			t.Errorf("%q: %v", v, err)
		}
	}
}

// TestShimPIDCreds: the host's services for one shim accept only that shim's process.
func TestShimPIDCreds(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name string
		pid  int // the instance's shim
		ok   bool
	}{
		{"the shim itself", os.Getpid(), true},
		{"another process", os.Getpid() + 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r refusals
			path := serve(t, NewServer([]grpc.ServerOption{grpc.Creds(onlyPID(tc.pid, r.add))}))
			err := check(path, insecure.NewCredentials())
			pids, errs := r.get()
			if tc.ok != (err == nil) || tc.ok != (len(pids) == 0) {
				t.Fatalf("RPC: %v; refusals: %v %v", err, pids, errs)
			}
			if !tc.ok && (pids[0] != os.Getpid() || !strings.Contains(errs[0], "not the instance's shim")) {
				t.Fatalf("refusal: pid %d (want %d), %s", pids[0], os.Getpid(), errs[0])
			}
		})
	}
}

// TestPeerPID: the pid of a connecting child process is the child's.
func TestPeerPID(t *testing.T) {
	if path := os.Getenv("ASTRID_TEST_CONNECT"); path != "" {
		// The child: connect, and wait for the parent to close the connection.
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Exit(1)
		}
		c.Read(make([]byte, 1))
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerPID$")
	cmd.Env = append(os.Environ(), "ASTRID_TEST_CONNECT="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pid, err := PeerPID(conn)
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("PeerPID = %d, %v; want the child's %d", pid, err, cmd.Process.Pid)
	}
}
