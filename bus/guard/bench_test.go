package guard

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// BenchmarkCheckPayload compares the payload rule's one pass with the three passes it replaced
// (threePassValid) and with encoding/json's grammar check alone, on a 256-byte message (the
// size of the bus throughput benchmark), a small one and 64 KiB of mixed JSON: the rule runs on
// every publish, in the shim and the host. The CheckPayload case reports its time as a ratio to
// the three-pass case of the same run (x-vs-three-pass).
func BenchmarkCheckPayload(b *testing.B) {
	payloads := []struct {
		name string
		p    []byte
	}{
		{"small", []byte(`{"n":123,"text":"hello"}`)},
		{"256B", []byte(`{"seq":123456,"from":"bench.v1.data","text":"` + strings.Repeat("lorem ipsum ", 17) + `","ok":true}`)},
		{"64KiB", []byte(`[` + strings.Repeat(`{"id":12345,"name":"caf\u00e9 日本","ok":true,"x":1.5e3},`, 1000) + `null]`)},
	}
	for _, c := range payloads {
		var threePass float64 // ns/op of the three-pass case in this run
		for _, f := range []struct {
			name  string
			check func([]byte) bool
		}{
			{"three-pass", threePassValid},
			{"CheckPayload", func(p []byte) bool { return CheckPayload(p) == nil }},
			{"json.Valid", json.Valid},
		} {
			b.Run(c.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(c.p)))
				start := time.Now()
				for b.Loop() {
					if !f.check(c.p) {
						b.Fatal("refused")
					}
				}
				ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
				if f.name == "three-pass" {
					threePass = ns
				} else if threePass > 0 {
					b.ReportMetric(ns/threePass, "x-vs-three-pass")
				}
			})
		}
	}
}
