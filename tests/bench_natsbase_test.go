package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus/cluster"
)

// The NATS baseline of the bus benchmarks: an embedded nats-server in this process and plain
// NATS clients in child processes (natsPeerMain), the physical reference the capsule→capsule
// figures are held against in the same run.

var (
	natsOnce sync.Once
	natsURL  string
	natsErr  error
)

// startNATS returns the URL of an embedded nats-server on a loopback port, started once for the
// benchmarks of this process (it ends with the process).
func startNATS(b *testing.B) string {
	natsOnce.Do(func() {
		var srv *cluster.Server
		if srv, natsErr = cluster.Listen(cluster.ServerOptions{Addr: "127.0.0.1:0"}); natsErr == nil {
			natsURL = srv.URL()
		}
	})
	if natsErr != nil {
		b.Fatal(natsErr)
	}
	return natsURL
}

// natsCount is natsPeerMain's "sub N" mode: it subscribes to bench.tp, writes "ready", and
// writes "done" once N messages have arrived.
func natsCount(nc *nats.Conn, count string) int {
	n, err := strconv.Atoi(count)
	if err != nil {
		return 1
	}
	got := make(chan struct{})
	seen := 0
	sub, err := nc.Subscribe("bench.tp", func(*nats.Msg) {
		if seen++; seen == n {
			close(got)
		}
	})
	if err != nil {
		return 1
	}
	sub.SetPendingLimits(-1, -1) // a slow consumer must not lose messages: the count would never end
	nc.Flush()
	fmt.Println("ready")
	<-got
	fmt.Println("done")
	return 0
}

// rawNATSThroughput sends n 256-byte messages from one NATS client process to another through
// the server at url and returns the time from the publisher's start to the subscriber's last
// message (both processes are started and connected before the clock starts).
func rawNATSThroughput(b *testing.B, url string, n int) time.Duration {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsPeerEnv+"="+url, natsPeerModeEnv+"=sub "+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	lines := bufio.NewReader(out)
	if line, _ := lines.ReadString('\n'); line != "ready\n" {
		b.Fatalf("NATS subscriber: %q", line)
	}
	stdin, wait := natsPeer(b, url, fmt.Sprintf("pub %d", n))
	defer wait()
	t0 := time.Now()
	io.WriteString(stdin, "go\n")
	if line, _ := lines.ReadString('\n'); line != "done\n" {
		b.Fatalf("NATS subscriber: %q", line)
	}
	return time.Since(t0)
}

// natsPinger is the NATS side of BenchmarkPublishRecvLatency: this process's NATS client and an
// echo client in another process, both connected once and kept for the benchmark's blocks.
type natsPinger struct {
	nc   *nats.Conn
	pong *nats.Subscription
	wait func()
}

// newNATSPinger connects a client to the server at url and starts the echo peer; close ends both.
func newNATSPinger(b *testing.B, url string) *natsPinger {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	pong, err := nc.SubscribeSync("bench.pong")
	if err != nil {
		nc.Close()
		b.Fatal(err)
	}
	nc.Flush()
	_, wait := natsPeer(b, url, "echo")
	return &natsPinger{nc: nc, pong: pong, wait: wait}
}

func (p *natsPinger) close() {
	p.wait()
	p.nc.Close()
}

// latency measures n publish→recv times between the client and the echo peer: half of each round
// trip, in ns, as the capsules' latency export measures its own (publish, then wait for the
// reply; the same 10-byte JSON payload).
func (p *natsPinger) latency(b *testing.B, n int) []int64 {
	lat := make([]int64, 0, n)
	msg := []byte(`{"ping":1}`)
	for range n {
		t0 := time.Now()
		p.nc.Publish("bench.ping", msg)
		if _, err := p.pong.NextMsg(eventTimeout); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, int64(time.Since(t0))/2)
	}
	return lat
}
