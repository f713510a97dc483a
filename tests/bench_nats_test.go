package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus/cluster"
	"github.com/astrid-go/astrid/host"
)

// The bus across hosts against the embedded bus and raw NATS, in the same run: capsule→capsule
// messages/s and publish→recv latency (p50, p99) between two hosts on an embedded NATS server,
// the same between two capsules of one host, and the same between two plain NATS clients in two
// processes (this one and a child, natsPeerMain).

// natsPeerEnv, set to a NATS URL, makes the test binary a NATS peer (natsPeerMain) in the mode
// of natsPeerModeEnv: "pub N" publishes N 256-byte messages on bench.tp when it reads a line on
// stdin; "sub N" receives N messages on bench.tp and then writes "done" (natsCount); "echo"
// answers every message on bench.ping.NAME with the same on bench.pong.NAME (each pinger has a
// NAME of its own, so none sees another's answers); "ping" measures round trips to the echo peer
// (natsPingMain).
const (
	natsPeerEnv     = "ASTRID_TEST_NATS_PEER"
	natsPeerModeEnv = "ASTRID_TEST_NATS_MODE"
)

func natsPeerMain() int {
	nc, err := nats.Connect(os.Getenv(natsPeerEnv))
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer nc.Close()
	mode := os.Getenv(natsPeerModeEnv)
	in := bufio.NewReader(os.Stdin)
	if mode == "echo" {
		echo := func(m *nats.Msg) { nc.Publish("bench.pong."+m.Subject[len("bench.ping."):], m.Data) }
		if _, err := nc.Subscribe("bench.ping.*", echo); err != nil {
			return 1
		}
		nc.Flush()
		fmt.Println("ready")
		io.Copy(io.Discard, in) // until the parent closes stdin
		return 0
	}
	if mode == "ping" {
		return natsPingMain(nc, in)
	}
	if rest, ok := strings.CutPrefix(mode, "sub "); ok {
		return natsCount(nc, rest)
	}
	n, _ := strconv.Atoi(mode[len("pub "):])
	payload := make([]byte, 256)
	fmt.Println("ready")
	in.ReadString('\n')
	for range n {
		nc.Publish("bench.tp", payload)
	}
	nc.Flush()
	return 0
}

// natsPeer starts the test binary as a NATS peer and waits until it is ready.
func natsPeer(b *testing.B, url, mode string) (stdin io.WriteCloser, wait func()) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsPeerEnv+"="+url, natsPeerModeEnv+"="+mode)
	stdin, _ = cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		b.Fatalf("NATS peer: %q", line)
	}
	return stdin, func() { stdin.Close(); cmd.Wait() }
}

func benchBusHost(b *testing.B, url string) *host.Host {
	h := benchHost(b)
	if url != "" {
		if err := h.JoinBus(cluster.Options{URL: url}); err != nil {
			b.Fatal(err)
		}
	}
	return h
}

// awaitSubscribers waits until h forwards topic to another host.
func awaitSubscribers(b *testing.B, h *host.Host, topic string) {
	deadline := time.Now().Add(eventTimeout)
	for h.BusSubscribers(topic) == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("the other host's subscription to %s never reached this one", topic)
		}
		time.Sleep(time.Millisecond)
	}
}

// capsuleThroughput is BenchmarkBusThroughput's capsule part: n 256-byte messages from pub to
// sub; it returns the time and the messages lagged.
func capsuleThroughput(b *testing.B, pub, sub *host.Instance, handle string, n int) (time.Duration, uint64) {
	done := benchCallGo(b, sub, "drain", fmt.Sprintf(`{"handle":%s,"count":%d}`, handle, n), nil)
	for !storeBusy(sub) {
	}
	t0 := time.Now()
	benchCall(b, pub, "publish", map[string]any{"topic": "test.v1.tp", "bytes": 256, "count": n})
	var res struct{ Received, Lagged uint64 }
	if err := json.Unmarshal(done(), &res); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0), res.Lagged
}

// capsuleLatency is BenchmarkPublishRecvLatency's capsule part: one-way times in ns.
func capsuleLatency(b *testing.B, a, r *host.Instance, ha, hr string, n int) []int64 {
	done := benchCallGo(b, r, "reflect", fmt.Sprintf(`{"handle":%s,"out":"test.v1.pong","count":%d}`, hr, n), nil)
	for !storeBusy(r) {
	}
	var rtts []int64
	if err := json.Unmarshal(benchCall(b, a, "latency", fmt.Sprintf(`{"handle":%s,"out":"test.v1.ping","count":%d}`, ha, n)), &rtts); err != nil {
		b.Fatal(err)
	}
	done()
	for i := range rtts {
		rtts[i] /= 2
	}
	return rtts
}

func BenchmarkBusNATS(b *testing.B) {
	const msgs, samples = 20000, 1000
	srv, err := cluster.Listen(cluster.ServerOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	hA, hB, hL := benchBusHost(b, srv.URL()), benchBusHost(b, srv.URL()), benchBusHost(b, "")
	fast := capsuleVariant(b, "ipc", "ipc_bytes_per_sec = \"1GiB\"\n")

	// Across hosts: publisher and pinger on A, subscriber and reflector on B.
	pubA, subB := benchLoad(b, hA, fast), benchLoad(b, hB, fast)
	hSubB := string(benchCall(b, subB, "subscribe", "test.v1.tp"))
	pingA, reflB := benchLoad(b, hA, capsules["ipc"]), benchLoad(b, hB, capsules["ipc"])
	hPingA := string(benchCall(b, pingA, "subscribe", "test.v1.pong"))
	hReflB := string(benchCall(b, reflB, "subscribe", "test.v1.ping"))
	awaitSubscribers(b, hA, "test.v1.tp")
	awaitSubscribers(b, hA, "test.v1.ping")
	awaitSubscribers(b, hB, "test.v1.pong")
	// One host: the same four capsules.
	pubL, subL := benchLoad(b, hL, fast), benchLoad(b, hL, fast)
	hSubL := string(benchCall(b, subL, "subscribe", "test.v1.tp"))
	pingL, reflL := benchLoad(b, hL, capsules["ipc"]), benchLoad(b, hL, capsules["ipc"])
	hPingL := string(benchCall(b, pingL, "subscribe", "test.v1.pong"))
	hReflL := string(benchCall(b, reflL, "subscribe", "test.v1.ping"))
	// Raw NATS: this process and a child.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	var natsTime, localTime, rawTime time.Duration
	var natsLag, localLag uint64
	var natsLat, localLat, rawLat []int64
	b.ResetTimer()
	for range b.N {
		d, lag := capsuleThroughput(b, pubA, subB, hSubB, msgs)
		natsTime, natsLag = natsTime+d, natsLag+lag
		d, lag = capsuleThroughput(b, pubL, subL, hSubL, msgs)
		localTime, localLag = localTime+d, localLag+lag

		got := make(chan struct{})
		count := 0
		sub, err := nc.Subscribe("bench.tp", func(*nats.Msg) {
			if count++; count == msgs {
				close(got)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		sub.SetPendingLimits(-1, -1)
		nc.Flush()
		stdin, wait := natsPeer(b, srv.URL(), fmt.Sprintf("pub %d", msgs))
		t0 := time.Now()
		io.WriteString(stdin, "go\n")
		<-got
		rawTime += time.Since(t0)
		wait()
		sub.Unsubscribe()

		natsLat = append(natsLat, capsuleLatency(b, pingA, reflB, hPingA, hReflB, samples)...)
		localLat = append(localLat, capsuleLatency(b, pingL, reflL, hPingL, hReflL, samples)...)
		pong, err := nc.SubscribeSync("bench.pong.raw")
		if err != nil {
			b.Fatal(err)
		}
		nc.Flush()
		stdin, wait = natsPeer(b, srv.URL(), "echo")
		for range samples {
			t0 := time.Now()
			nc.Publish("bench.ping.raw", make([]byte, 16))
			if _, err := pong.NextMsg(eventTimeout); err != nil {
				b.Fatal(err)
			}
			rawLat = append(rawLat, int64(time.Since(t0))/2)
		}
		wait()
		pong.Unsubscribe()
	}
	b.StopTimer()
	total := float64(msgs * b.N)
	b.ReportMetric(total/natsTime.Seconds(), "nats-msgs/s")
	b.ReportMetric(total/localTime.Seconds(), "embedded-msgs/s")
	b.ReportMetric(total/rawTime.Seconds(), "raw-nats-msgs/s")
	b.ReportMetric(float64(natsTime)/float64(localTime), "time-ratio-nats/embedded")
	b.ReportMetric(float64(natsTime)/float64(rawTime), "time-ratio-nats/raw")
	b.ReportMetric(float64(natsLag)/float64(b.N), "nats-lagged/run")
	b.ReportMetric(float64(localLag)/float64(b.N), "embedded-lagged/run")
	n50, n99 := percentiles(natsLat)
	l50, l99 := percentiles(localLat)
	r50, r99 := percentiles(rawLat)
	b.ReportMetric(n50/1e3, "nats-p50-µs")
	b.ReportMetric(n99/1e3, "nats-p99-µs")
	b.ReportMetric(l50/1e3, "embedded-p50-µs")
	b.ReportMetric(l99/1e3, "embedded-p99-µs")
	b.ReportMetric(r50/1e3, "raw-nats-p50-µs")
	b.ReportMetric(r99/1e3, "raw-nats-p99-µs")
	b.ReportMetric(n50/l50, "p50-ratio-nats/embedded")
	b.ReportMetric(n50/r50, "p50-ratio-nats/raw")
}
