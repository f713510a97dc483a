package bus

import (
	"strings"
	"testing"
)

// BenchmarkPayloadFromGuest measures the host's whole treatment of a guest payload, the check
// and the conversion to the tagged payload a Message carries, on 256-byte payloads (the size of
// the bus throughput benchmark): a plain object (custom), an object with upstream's "type" (a
// variant, read member by member), a string, and an object with whitespace to compact.
func BenchmarkPayloadFromGuest(b *testing.B) {
	text := strings.Repeat("lorem ipsum ", 17)
	for _, c := range []struct{ name, p string }{
		{"object", `{"seq":123456,"from":"bench.v1.data","text":"` + text + `","ok":true}`},
		{"variant", `{"type":"user_input","text":"` + text + `","session_id":"s-123456789"}`},
		{"string", `"` + text + text[:40] + `"`},
		{"spaced", `{ "seq" : 123456, "from" : "bench.v1.data", "text" : "` + text + `", "ok" : true }`},
	} {
		p := []byte(c.p)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := PayloadFromGuest(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
