package astrid

import (
	"fmt"
	"testing"
)

// oneMessageEnvelopes returns n envelopes of one message each, as the host writes what a
// publish→recv round trip gets (BenchmarkPublishRecvLatency's {"ping":1}): the same topic,
// source and principal each time, a new timestamp and seq.
func oneMessageEnvelopes(n int) [][]byte {
	envs := make([][]byte, n)
	for i := range envs {
		envs[i] = []byte(`{"messages":[` + hostMsg("bench.lat.b2a", `{"type":"custom","data":{"ping":1}}`,
			"6f1c1e0a-9a6b-4f43-9d0e-2b7f7c1d2e3f", fmt.Sprintf("2026-12-07T12:00:%02d.%09dZ", i%60, 1234567*i),
			1000+i, "default") + `],"dropped":0,"lagged":0}`)
	}
	return envs
}

// BenchmarkDecodeOneMessage is the guest's decode of the envelope a Recv of a publish→recv round
// trip returns. Run it in WebAssembly (GOOS=wasip1) to measure what a capsule pays.
func BenchmarkDecodeOneMessage(b *testing.B) {
	envs := oneMessageEnvelopes(64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		env, ok := decodeEnvelopeFast(envs[i%len(envs)])
		if !ok || len(env.Messages) != 1 {
			b.Fatal("fast path failed")
		}
		i++
	}
}
