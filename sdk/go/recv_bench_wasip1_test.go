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
