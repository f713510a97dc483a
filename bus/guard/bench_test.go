package guard

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkCheckPayload compares the payload rule with encoding/json's grammar check alone, on a
// small message and on 64 KiB of mixed JSON: the rule runs on every publish, in the shim and the
// host.
func BenchmarkCheckPayload(b *testing.B) {
	payloads := map[string][]byte{
		"small": []byte(`{"n":123,"text":"hello"}`),
		"64KiB": []byte(`[` + strings.Repeat(`{"id":12345,"name":"caf\u00e9 日本","ok":true,"x":1.5e3},`, 1000) + `null]`),
	}
	for name, p := range payloads {
		b.Run(name+"/CheckPayload", func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if CheckPayload(p) != nil {
					b.Fatal("refused")
				}
			}
		})
		b.Run(name+"/json.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if !json.Valid(p) {
					b.Fatal("refused")
				}
			}
		})
	}
}
