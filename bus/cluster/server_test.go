package cluster

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
)

// TestListenPorts: port 0 picks a free port for each server (nats-server's own port 0 is 4222,
// which two hosts, or two test packages, would fight over), and an address in use is refused
// naming why.
func TestListenPorts(t *testing.T) {
	noLeaks(t)
	a := startServer(t, "127.0.0.1:0")
	b := startServer(t, "127.0.0.1:0")
	pa, pb := a.Addr().(*net.TCPAddr).Port, b.Addr().(*net.TCPAddr).Port
	if pa == pb || pa == 4222 || pb == 4222 {
		t.Fatalf("two servers on 127.0.0.1:0 listen on ports %d and %d; want two free ports", pa, pb)
	}
	_, err := Listen(ServerOptions{Addr: a.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Listen on %s, which a server holds: %v; want an error saying the address is in use", a.Addr(), err)
	}
	t.Log(err)
}

// syncBuffer is a log destination tests read while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerLogsAfterStart: once the server runs, its errors reach the host's log (here: a
// client refused for a wrong password; before, they were dropped). What a client sent must not
// reach the operator's terminal raw: nats-server quotes this user name itself, and the host
// escapes every line of the server's as well (serverLine) for the lines that do not.
func TestServerLogsAfterStart(t *testing.T) {
	noLeaks(t)
	var out syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug})
	s, err := Listen(ServerOptions{Addr: "alice:secret@127.0.0.1:0", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	evil := "mallory\x1b[2J\x1b]0;pwned\a"
	nc, err := nats.Connect("nats://"+s.Addr().String(), nats.UserInfo(evil, "wrong"), nats.NoReconnect())
	if err == nil {
		nc.Close()
		t.Fatal("a client with a wrong password connected")
	}
	got := out.String()
	if !strings.Contains(got, "authentication error") || !strings.Contains(got, "mallory") {
		t.Fatalf("the host's log after a refused client:\n%s\nwant the server's authentication error naming the user", got)
	}
	if strings.ContainsAny(got, "\x1b\a") {
		t.Fatalf("the host's log holds the client's raw control characters:\n%q", got)
	}
}
