package cluster

import (
	"net"
	"strings"
	"testing"
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
