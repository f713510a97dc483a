package guard

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchString256 is the payload of the bus throughput benchmark: 256 bytes, a JSON string of
// 254 'x'.
var benchString256 = []byte(`"` + strings.Repeat("x", 254) + `"`)

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
		{"str256", benchString256},
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

// BenchmarkCheckPublish is one publish through a Guard's checks as the shim makes it
// (CheckPublishShape, which reads the clock) and as the host does (CheckPublishShapeAt, at an
// instant read once per frame): the bus benchmark's 256-byte string, a 256-byte object and a
// small object, to one repeated topic. The budget is large enough never to refuse.
func BenchmarkCheckPublish(b *testing.B) {
	payloads := []struct {
		name string
		p    []byte
	}{
		{"str256", benchString256},
		{"obj256", []byte(`{"seq":123456,"from":"bench.v1.data","text":"` + strings.Repeat("lorem ipsum ", 17) + `","ok":true}`)},
		{"small", []byte(`{"n":123,"text":"hello"}`)},
	}
	for _, c := range payloads {
		for _, host := range []bool{false, true} {
			name := c.name + "/shim"
			if host {
				name = c.name + "/host"
			}
			b.Run(name, func(b *testing.B) {
				g := New(Config{CapsuleID: "c", Publish: []string{"bench.v1.*"}, BytesPerSec: 1 << 62}, nil)
				now := g.Now()
				b.ReportAllocs()
				b.SetBytes(int64(len(c.p)))
				for b.Loop() {
					var err error
					if host {
						_, err = g.CheckPublishShapeAt("bench.v1.data", c.p, now)
					} else {
						_, err = g.CheckPublishShape("bench.v1.data", c.p)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
