package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// natsPinger is the NATS side of BenchmarkPublishRecvLatency: the pair the target is
// held against, a ping client and an echo client in two child processes through the embedded
// server in this one (the topology of two capsules through their host), and, for reference, a
// ping client in this process, the server's, against the same echo client. All are connected
// once and kept for the benchmark's blocks.
type natsPinger struct {
	nc     *nats.Conn // the in-process ping client
	pong   *nats.Subscription
	ping   io.WriteCloser // the ping peer's stdin: a sample count a line
	pinged *bufio.Reader  // its stdout: the samples, a line a count
	wait   func()
}

// newNATSPinger connects a client to the server at url and starts the echo and ping peers;
// close ends them all.
func newNATSPinger(b *testing.B, url string) *natsPinger {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	pong, err := nc.SubscribeSync("bench.pong.inproc")
	if err != nil {
		nc.Close()
		b.Fatal(err)
	}
	nc.Flush()
	_, waitEcho := natsPeer(b, url, "echo")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsPeerEnv+"="+url, natsPeerModeEnv+"=ping")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		waitEcho()
		nc.Close()
		b.Fatal(err)
	}
	p := &natsPinger{nc: nc, pong: pong, ping: stdin, pinged: bufio.NewReader(stdout)}
	p.wait = func() {
		stdin.Close()
		cmd.Wait()
		waitEcho()
	}
	if line, _ := p.pinged.ReadString('\n'); line != "ready\n" {
		p.close()
		b.Fatalf("NATS ping peer: %q", line)
	}
	return p
}

func (p *natsPinger) close() {
	p.wait()
	p.nc.Close()
}

// latency measures n publish→recv times between the two peer processes (natsPingMain), in ns.
func (p *natsPinger) latency(b *testing.B, n int) []int64 {
	fmt.Fprintln(p.ping, n)
	line, err := p.pinged.ReadString('\n')
	if err != nil {
		b.Fatalf("NATS ping peer: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) != n {
		b.Fatalf("NATS ping peer: %d samples, want %d: %.200q", len(fields), n, line)
	}
	lat := make([]int64, n)
	for i, f := range fields {
		if lat[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			b.Fatalf("NATS ping peer: %.200q", line)
		}
	}
	return lat
}

// latencyInProcess measures n publish→recv times between this process's client and the echo
// peer, in ns: one process boundary fewer a round trip than the pair's.
func (p *natsPinger) latencyInProcess(b *testing.B, n int) []int64 {
	lat, err := natsPings(p.nc, "bench.ping.inproc", p.pong, n)
	if err != nil {
		b.Fatal(err)
	}
	return lat
}

// natsPings measures n publish→recv times through nc, in ns: half of each round trip to the echo
// peer (a publish on ping, its answer on pong), as the capsules' latency export measures its own
// (publish, then wait for the reply; the same 10-byte JSON payload).
func natsPings(nc *nats.Conn, ping string, pong *nats.Subscription, n int) ([]int64, error) {
	lat := make([]int64, 0, n)
	msg := []byte(`{"ping":1}`)
	for range n {
		t0 := time.Now()
		nc.Publish(ping, msg)
		if _, err := pong.NextMsg(eventTimeout); err != nil {
			return nil, fmt.Errorf("NATS pong: %w", err)
		}
		lat = append(lat, int64(time.Since(t0))/2)
	}
	return lat, nil
}

// natsPingMain is natsPeerMain's "ping" mode: for each sample count it reads on stdin, it
// measures that many publish→recv times against the echo peer (natsPings) and writes them, in
// ns, on one line of stdout.
func natsPingMain(nc *nats.Conn, in *bufio.Reader) int {
	pong, err := nc.SubscribeSync("bench.pong.pair")
	if err != nil {
		fmt.Println("subscribe:", err)
		return 1
	}
	nc.Flush()
	fmt.Println("ready")
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0 // the parent closed stdin
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			fmt.Fprintln(out, "count:", err)
			return 1
		}
		lat, err := natsPings(nc, "bench.ping.pair", pong, n)
		if err != nil {
			fmt.Fprintln(out, err)
			return 1
		}
		for i, v := range lat {
			if i > 0 {
				out.WriteByte(' ')
			}
			out.WriteString(strconv.FormatInt(v, 10))
		}
		out.WriteByte('\n')
		out.Flush()
	}
}
