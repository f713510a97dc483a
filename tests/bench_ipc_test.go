package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/pb"
)

// benchCall calls an export and fails the benchmark on error.
func benchCall(b *testing.B, inst *host.Instance, export string, input any) []byte {
	in, err := json.Marshal(input)
	if s, ok := input.(string); ok {
		in = []byte(s)
	}
	if err != nil {
		b.Fatal(err)
	}
	out, err := inst.Call(context.Background(), export, in, time.Minute)
	if err != nil {
		b.Fatalf("%s(%s): %v", export, in, err)
	}
	return out
}

func benchLoad(b *testing.B, h *host.Host, dir string) *host.Instance {
	m, _, err := manifest.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	inst, _, err := h.Load(context.Background(), m, host.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return inst
}

// BenchmarkBusThroughput: 256-byte messages from one capsule to another (guest publishes,
// pipelined to the host's bus, drained by the other guest's recv), against the same messages
// through the in-process bus alone. Reports both rates and the ratio of their times; the
// capsule rate counts only the messages delivered to the subscriber, not those its queue lagged.
func BenchmarkBusThroughput(b *testing.B) {
	const n = 20000
	h := benchHost(b)
	// 100 000 messages of 256 B a second is 25 MB/s: more than the default quota of 10 MiB/s.
	fast := capsuleVariant(b, "ipc", "ipc_bytes_per_sec = \"1GiB\"\n") // the manifest ends in [limits]
	pub, sub := benchLoad(b, h, fast), benchLoad(b, h, fast)
	handle := string(benchCall(b, sub, "subscribe", "test.v1.tp"))
	payload := json.RawMessage(fmt.Sprintf(`"%0254d"`, 0)) // 256 bytes, as the guest's
	var capsuleTime, busTime time.Duration
	var lagged, delivered uint64
	b.ResetTimer()
	for range b.N {
		done := make(chan []byte, 1)
		go func() { done <- benchCall(b, sub, "drain", fmt.Sprintf(`{"handle":%s,"count":%d}`, handle, n)) }()
		for !storeBusy(sub) {
		}
		t0 := time.Now()
		benchCall(b, pub, "publish", map[string]any{"topic": "test.v1.tp", "bytes": 256, "count": n})
		var res struct{ Received, Lagged uint64 }
		if err := json.Unmarshal(<-done, &res); err != nil {
			b.Fatal(err)
		}
		capsuleTime += time.Since(t0)
		lagged += res.Lagged
		delivered += res.Received

		local := bus.New(bus.Options{})
		s := local.Subscribe("test.v1.tp")
		t1 := time.Now()
		got := 0
		for i := range n {
			local.Publish(bus.Message{Topic: "test.v1.tp", Payload: payload})
			if i%512 == 511 {
				got += len(s.Poll(10 << 20).Messages)
			}
		}
		got += len(s.Poll(10 << 20).Messages)
		busTime += time.Since(t1)
		s.Close()
		if got != n {
			b.Fatalf("in-process bus delivered %d of %d", got, n)
		}
	}
	b.StopTimer()
	msgs := float64(n * b.N)
	b.ReportMetric(float64(delivered)/capsuleTime.Seconds(), "capsule-msgs/s")
	b.ReportMetric(msgs/busTime.Seconds(), "inprocess-msgs/s")
	b.ReportMetric(float64(capsuleTime)/float64(busTime), "ratio")
	b.ReportMetric(float64(lagged)/float64(b.N), "lagged/run")
}

// BenchmarkPublishRecvLatency: the time from a guest's publish to another guest, blocked in
// recv, receiving it (half of a measured round trip between two capsules), against a raw broker
// round trip (one trivial shim→host RPC made by rawshim). Reports p50 and p99 of both.
func BenchmarkPublishRecvLatency(b *testing.B) {
	h := benchHost(b)
	a, r := benchLoad(b, h, capsules["ipc"]), benchLoad(b, h, capsules["ipc"])
	ha := string(benchCall(b, a, "subscribe", "test.v1.pong"))
	hr := string(benchCall(b, r, "subscribe", "test.v1.ping"))

	client, raw, pid := startRaw(b)
	defer client.Kill()
	id := raw.ServeHostServices(&benchHTTP{}, pid, nil)
	if _, err := raw.Load(context.Background(), &pb.LoadRequest{HostServicesId: id}); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	done := make(chan []byte, 1)
	go func() {
		done <- benchCall(b, r, "reflect", fmt.Sprintf(`{"handle":%s,"out":"test.v1.pong","count":%d}`, hr, b.N))
	}()
	for !storeBusy(r) {
	}
	var rtts []int64
	if err := json.Unmarshal(benchCall(b, a, "latency", fmt.Sprintf(`{"handle":%s,"out":"test.v1.ping","count":%d}`, ha, b.N)), &rtts); err != nil {
		b.Fatal(err)
	}
	<-done
	resp, err := raw.Invoke(context.Background(), &pb.InvokeRequest{Export: "broker-rtt", Input: []byte(fmt.Sprint(b.N))})
	if err != nil {
		b.Fatal(err)
	}
	var brokers []int64
	if err := json.Unmarshal(resp.Output, &brokers); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	oneWay := make([]int64, len(rtts))
	for i, d := range rtts {
		oneWay[i] = d / 2
	}
	p50, p99 := percentiles(oneWay)
	r50, r99 := percentiles(brokers)
	b.ReportMetric(p50/1e3, "p50-µs")
	b.ReportMetric(p99/1e3, "p99-µs")
	b.ReportMetric(r50/1e3, "broker-p50-µs")
	b.ReportMetric(r99/1e3, "broker-p99-µs")
	b.ReportMetric(p50/r50, "ratio-p50")
}

func percentiles(ns []int64) (p50, p99 float64) {
	s := slices.Clone(ns)
	slices.Sort(s)
	at := func(q float64) float64 { return float64(s[min(len(s)-1, int(q*float64(len(s))))]) }
	return at(0.50), at(0.99)
}
