//go:build wasip1

package astrid

import (
	"testing"
	"time"
)

// These benchmarks need a runner that provides the kernel and astrid_ipc_publish /
// astrid_ipc_recv (recv returning a one-message envelope): they measure the guest's side of a
// publish→recv round trip, in WebAssembly.

func BenchmarkPublishJSON(b *testing.B) {
	payload := []byte(`{"ping":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := PublishJSON("bench.lat.a2b", payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecv(b *testing.B) {
	s := &Subscription{handle: 1, text: "1", pattern: "bench.lat.b2a"}
	b.ReportAllocs()
	for b.Loop() {
		env, err := s.Recv(10 * time.Second)
		if err != nil || len(env.Messages) != 1 {
			b.Fatal("recv failed", err)
		}
	}
}

// BenchmarkIPCHostCalls is the floor under BenchmarkPublishJSON and BenchmarkRecv: the host
// calls alone (what the runner's host functions cost), for the guest's share by difference.
func BenchmarkIPCHostCalls(b *testing.B) {
	b.Run("publish", func(b *testing.B) {
		for b.Loop() {
			hostIPCPublish(0, 0)
		}
	})
	b.Run("recv", func(b *testing.B) {
		for b.Loop() {
			FindMemory(hostIPCRecv(0, 0)).Free()
		}
	})
}
