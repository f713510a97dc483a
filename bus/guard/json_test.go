package guard

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// payloadCorpus is the crafted input both TestCheckPayloadAgrees and the fuzz seed corpus use:
// each edge of the rule, on both sides of it.
var payloadCorpus = []string{
	"", " ", "\ufeff{}", "\xef\xbb\xbf1", "{}", " {} ", "[]", "[ ]", "{ }", "[1,]", "[,1]", "{,}", `{"a":1,}`,
	`{"a" : 1 , "b" :[ 1 , 2 ] }`, "\t\n\r 1 \t\n\r", "\v1", "\f1", "1 2", `{} {}`, `{}}`, `[]]`, `[}`, `{]`,
	`{"a"}`, `{"a":}`, `{1:2}`, `{"a" 1}`, `{"a":1 "b":2}`, `["a" "b"]`,
	"true", "false", "null", "tru", "nul", "falsey", "True", "nulll", "[true,false,null]",
	"0", "-0", "01", "-01", "1.", ".5", "1.5", "-", "+1", "1e", "1e+", "1e5", "1E-5", "0e0", "-0.0e-0",
	"1.7976931348623157e308", "1.7976931348623159e308", "1e308", "1e309", "1e400", "-1e400", "1e-400",
	"0.000000000000000000000001e330", "0e99999", "0.0e99999999999999999999", "1e99999999999999999999",
	strings.Repeat("9", 308), strings.Repeat("9", 309), strings.Repeat("9", 400), "0." + strings.Repeat("9", 400) + "e309",
	strings.Repeat("9", 400) + "e-100", strings.Repeat("9", 400) + "e-93", "123456789012345678901234567890",
	`{"a":[0,1.5e309]}`, "[1e400]", `"1e400"`,
	`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\x41"`, `"\u0041"`, `"\u004"`, `"\u00G1"`,
	`"\uD83D\uDE00"`, `"\ud83d\ude00"`, `"\ud800"`, `["\ud800"]`, `"\udc00"`, `"\ud800\u0041"`, `"\ud800\ud800"`,
	`"\ud800\\udc00"`, `"\ud800x\udc00"`, `"\udbff\udfff"`, `"\ud800\udc"`, `"\ud800\`, `"\ud800\u`,
	"\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\"\t\"", "\"\xff\"", "{\"\xc3\x28\":1}", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"",
	"\"\xf4\x90\x80\x80\"", "\"\xef\xbf\xbd\"", "\"日本\"", "\"caf\xc3\xa9\"", "\"\xe6\x97\"", `"abc`, `"`, "\xff",
	strings.Repeat("[", 127) + strings.Repeat("]", 127), strings.Repeat("[", 128) + strings.Repeat("]", 128),
	strings.Repeat(`{"a":`, 127) + "1" + strings.Repeat("}", 127), strings.Repeat(`{"a":`, 128) + "1" + strings.Repeat("}", 128),
	strings.Repeat("[", 127) + "{}" + strings.Repeat("]", 127), strings.Repeat("[", 200) + strings.Repeat("]", 199),
	strings.Repeat("[{\"a\":", 63) + "[1]" + strings.Repeat("}]", 63), strings.Repeat("[{\"a\":", 64) + "[1]" + strings.Repeat("}]", 64),
	`{"type":"x"}`, ` { "type" : "x" } `, `{"a":{"type":"x"}}`, `[{"type":"x"}]`, `{"a":"type"}`, `{"types":1}`,
	`{"typ\u0065":1}`, `{"\u0074ype":1}`, `{"a\nb":1}`, `{"x":1,"type":2}`, `"type"`, `{"a":1} `,
	`{"a" :1}`, `{"a":1 }`, `[1 ]`, `{"a":[] }`,
}

// TestCheckPayloadAgrees: on every crafted input, the one-pass scanner accepts exactly what the
// three-pass rule it replaced accepts, and reports the shape its references compute.
func TestCheckPayloadAgrees(t *testing.T) {
	for _, in := range payloadCorpus {
		t.Run(strings.ToValidUTF8(in[:min(len(in), 40)], "?"), func(t *testing.T) {
			checkAgainstReference(t, []byte(in))
		})
	}
}

// TestPayloadShape: the shapes of some accepted payloads, as a table.
func TestPayloadShape(t *testing.T) {
	tests := []struct {
		in   string
		want PayloadShape
	}{
		{`{"type":"x"}`, ShapeObject | ShapeTypeKey},
		{`{"a":1,"type":"x"}`, ShapeObject | ShapeTypeKey},
		{`{ "type": "x" }`, ShapeObject | ShapeTypeKey | ShapeSpace},
		{`{"\u0074ype":1}`, ShapeObject | ShapeTypeKey}, // an escaped key may read "type"
		{`{"a\/b":1}`, ShapeObject | ShapeTypeKey},      // any escape: conservative
		{`{"a":{"type":"x"}}`, ShapeObject},             // a nested "type" does not tag
		{`{"a":"type","b":["type"]}`, ShapeObject},      // "type" as a value does not tag
		{`{"types":1,"typ":2}`, ShapeObject},            // nor a key that only starts or ends alike
		{`{}`, ShapeObject},                             // empty
		{`{ }`, ShapeObject | ShapeSpace},               // empty with space
		{`[{"type":"x"}]`, 0},                           // not an object
		{`"type"`, 0},                                   // a string
		{`"a b"`, 0},                                    // whitespace inside a string is significant
		{" 1", ShapeSpace},                              // leading
		{"1\n", ShapeSpace},                             // trailing
		{`[1, 2]`, ShapeSpace},                          // between
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CheckPayloadShape([]byte(tc.in))
			if err != nil || got != tc.want {
				t.Fatalf("CheckPayloadShape(%q) = %03b, %v; want %03b", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzCheckPayloadShape compares the one-pass scanner with the three-pass rule it replaced
// (json.Valid, utf8.Valid, then a scan for depth, surrogates and overflowing numbers) on any
// input, and its shape with references built from encoding/json: the fuzzer is what shows the
// two accept the same set.
func FuzzCheckPayloadShape(f *testing.F) {
	for _, s := range payloadCorpus {
		f.Add([]byte(s))
	}
	for k, s := range stringEdgeCorpus() {
		if k%61 == 0 { // a sample (of ~1500) for the fuzzer to mutate: TestScanStringEdges runs them all
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAgainstReference(t, raw)
	})
}

// checkAgainstReference fails t unless CheckPayloadShape(raw) accepts raw exactly when
// threePassValid does, with ErrPayloadNotJSON otherwise, and, for an accepted payload, reports:
// ShapeObject exactly for an object; ShapeTypeKey for every object with an own key that decodes
// to "type", and only for one with an own key that is "type" or has an escape; ShapeSpace
// exactly when json.Compact changes raw.
func checkAgainstReference(t *testing.T, raw []byte) {
	t.Helper()
	shape, err := CheckPayloadShape(raw)
	want := threePassValid(raw)
	if (err == nil) != want || (err != nil && err != ErrPayloadNotJSON) {
		t.Fatalf("CheckPayloadShape(%q) = %v; the three-pass rule says valid = %v", raw, err, want)
	}
	if err != nil {
		return
	}
	var compacted bytes.Buffer
	if err := json.Compact(&compacted, raw); err != nil {
		t.Fatalf("json.Compact(%q): %v", raw, err)
	}
	if space := !bytes.Equal(compacted.Bytes(), raw); (shape&ShapeSpace != 0) != space {
		t.Fatalf("CheckPayloadShape(%q) = %03b; json.Compact changes it: %v", raw, shape, space)
	}
	isObject := bytes.TrimLeft(raw, " \t\r\n")[0] == '{'
	if (shape&ShapeObject != 0) != isObject {
		t.Fatalf("CheckPayloadShape(%q) = %03b; an object: %v", raw, shape, isObject)
	}
	decodesType, literalOrEscaped := false, false
	if isObject {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.Token() // '{'
		for dec.More() {
			off := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("key of %q: %v", raw, err)
			}
			keyJSON := bytes.TrimLeft(raw[off:dec.InputOffset()], " \t\r\n,")
			decodesType = decodesType || tok == "type"
			literalOrEscaped = literalOrEscaped || string(keyJSON) == `"type"` || bytes.IndexByte(keyJSON, '\\') >= 0
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("value in %q: %v", raw, err)
			}
		}
		if _, err := dec.Token(); err != nil {
			t.Fatalf("end of %q: %v", raw, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("after %q: %v", raw, err)
		}
	}
	if got := shape&ShapeTypeKey != 0; (decodesType && !got) || (got && !literalOrEscaped) {
		t.Fatalf("CheckPayloadShape(%q) = %03b; a key decodes to \"type\": %v, a key is \"type\" or escaped: %v", raw, shape, decodesType, literalOrEscaped)
	}
}

// TestCheckPayloadRandom compares the scanner with the three-pass rule on generated JSON-like
// text (a fixed seed, so a failure reproduces): nested values of every kind, whitespace, escapes
// and surrogates, long and huge numbers, then some bytes changed, cut or appended, which the
// byte-level fuzzer reaches only slowly from its seeds.
func TestCheckPayloadRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	pieces := []string{` `, "\n", "\t", `"`, `\`, `\u`, `d83d`, `dc00`, `ud800`, `00e9`, `\n`, `e`, `E`, `-`, `+`, `.`,
		`0`, `9`, `1e308`, `e400`, "\xff", "\xed\xa0\x80", "é", "\x00", `{`, `}`, `[`, `]`, `,`, `:`, `null`, `tru`}
	var value func(b []byte, depth int) []byte
	value = func(b []byte, depth int) []byte {
		if rng.IntN(8) == 0 {
			b = append(b, " \n\t\r"[rng.IntN(4)])
		}
		switch k := rng.IntN(9); {
		case k == 0 && depth < 140:
			b = append(b, '[')
			for i := range rng.IntN(3) {
				if i > 0 {
					b = append(b, ',')
				}
				b = value(b, depth+1)
			}
			b = append(b, ']')
		case k == 1 && depth < 140:
			b = append(b, '{')
			for i := range rng.IntN(3) {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, []string{`"type"`, `"a"`, `"\u0074ype"`, `"ty pe"`}[rng.IntN(4)]...)
				b = append(b, ':')
				b = value(b, depth+1)
			}
			b = append(b, '}')
		case k == 2:
			b = append(b, '"')
			for range rng.IntN(4) {
				b = append(b, []string{`a`, `\"`, `\ud83d\ude00`, `\ud800`, `\udc00`, `\u00e9`, "日", "\xc3", ` `, `\\`, `\u`}[rng.IntN(11)]...)
			}
			b = append(b, '"')
		case k == 3:
			b = append(b, []string{"true", "false", "null"}[rng.IntN(3)]...)
		default:
			if rng.IntN(2) == 0 {
				b = append(b, '-')
			}
			b = append(b, strings.Repeat("9", 1+rng.IntN(3)*rng.IntN(160))...)
			if rng.IntN(3) == 0 {
				b = append(b, '.', '5')
			}
			if rng.IntN(3) == 0 {
				b = append(b, "eE"[rng.IntN(2)])
				b = append(b, []string{"", "+", "-"}[rng.IntN(3)]...)
				b = strconv.AppendInt(b, int64(rng.IntN(700)), 10)
			}
		}
		return b
	}
	accepted := 0
	for range 20_000 {
		b := value(nil, rng.IntN(130))
		// Deep nesting from the start: wrap in up to 130 arrays.
		if d := rng.IntN(4); d == 0 {
			n := 120 + rng.IntN(10)
			b = append(append([]byte(strings.Repeat("[", n)), b...), strings.Repeat("]", n)...)
		}
		if len(b) > 0 && rng.IntN(3) == 0 { // corrupt it
			switch rng.IntN(3) {
			case 0:
				b[rng.IntN(len(b))] = pieces[rng.IntN(len(pieces))][0]
			case 1:
				b = b[:rng.IntN(len(b))]
			default:
				b = append(b, pieces[rng.IntN(len(pieces))]...)
			}
		}
		checkAgainstReference(t, b)
		if t.Failed() {
			return
		}
		if threePassValid(b) {
			accepted++
		}
	}
	// Both sides of the rule must be well exercised for the comparison to mean something.
	if accepted < 2_000 || accepted > 18_000 {
		t.Fatalf("the generator made %d valid payloads of 20000", accepted)
	}
	t.Logf("%d of 20000 generated payloads valid", accepted)
}

// TestStopBytes: the word-at-a-time test of skipPlain agrees with plainStringByte on words
// made of every byte value at every position among plain bytes of every kind (those next to the
// thresholds of its subtractions among them), with a second stop byte after the first, and on
// random words: zero exactly when all eight bytes are plain, else its lowest set bit in the
// first byte that is not.
func TestStopBytes(t *testing.T) {
	check := func(b [8]byte) {
		t.Helper()
		first := -1
		for k, c := range b {
			if !plainStringByte[c] {
				first = k
				break
			}
		}
		m := stopBytes(binary.LittleEndian.Uint64(b[:]))
		if got := bits.TrailingZeros64(m) / 8; (m == 0) != (first < 0) || (first >= 0 && got != first) || m&^0x8080808080808080 != 0 {
			t.Fatalf("stopBytes(%q) = %#016x; the first byte that is not plain: %d", b[:], m, first)
		}
	}
	fillers := []byte{' ', '!', '#', '[', ']', 0x7f, 'a', '~'}
	t.Run("one byte of every value at every position", func(t *testing.T) {
		for _, fill := range fillers {
			for pos := range 8 {
				for c := range 256 {
					b := [8]byte{}
					for k := range b {
						b[k] = fillers[(k+int(fill))%len(fillers)]
					}
					b[pos] = byte(c)
					check(b)
					for after := pos + 1; after < 8; after++ { // and a stop byte after it
						for _, d := range []byte{0, '"', '\\', 0x1f, 0x80, 0xff} {
							b2 := b
							b2[after] = d
							check(b2)
						}
					}
				}
			}
		}
	})
	t.Run("random words", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for range 200000 {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], r.Uint64())
			for i := range b { // mostly plain bytes, so both answers are common
				if r.IntN(4) != 0 {
					b[i] = byte(0x20 + r.IntN(0x60))
				}
			}
			check(b)
		}
	})
}

// TestSkipPlain compares skipPlain with a byte-at-a-time reference on every length of raw up
// to a few rounds of its 32-byte loop, from every start within the first word, with one byte of
// every value at every position (or none): the edges of its three loops and of its last-word
// load. The plain bytes around it vary among those next to the thresholds of stopBytes.
func TestSkipPlain(t *testing.T) {
	fillers := []byte{' ', '!', '#', '[', ']', 0x7f, 'a', '~'}
	ref := func(raw []byte, i int) int {
		for i < len(raw) && plainStringByte[raw[i]] {
			i++
		}
		return i
	}
	raw := make([]byte, 0, 100)
	for n := range 100 {
		raw = raw[:n]
		for k := range raw {
			raw[k] = fillers[(k*3+n)%len(fillers)]
		}
		for i := range min(n, 9) + 1 {
			for pos := i; pos <= n; pos++ {
				for c := range 256 {
					if pos < n {
						old := raw[pos]
						raw[pos] = byte(c)
						if got, want := skipPlain(raw, i), ref(raw, i); got != want {
							t.Fatalf("skipPlain(%q, %d) = %d, want %d", raw, i, got, want)
						}
						raw[pos] = old
					} else if c == 0 {
						if got, want := skipPlain(raw, i), ref(raw, i); got != want {
							t.Fatalf("skipPlain(%q, %d) = %d, want %d", raw, i, got, want)
						}
					}
				}
			}
		}
	}
}

// FuzzSkipPlain compares skipPlain with the byte-at-a-time reference of TestSkipPlain on any
// input and start.
func FuzzSkipPlain(f *testing.F) {
	f.Add([]byte(strings.Repeat("x", 40)+`"`), uint8(1))
	f.Add([]byte("abcdefgh\xc3\xa9ijklmnop\\qrstuvwxyz0123456789ABCDEF\x1f"), uint8(0))
	f.Add([]byte("0123456"), uint8(3))
	f.Fuzz(func(t *testing.T, raw []byte, start uint8) {
		i := min(int(start), len(raw))
		want := i
		for want < len(raw) && plainStringByte[raw[want]] {
			want++
		}
		if got := skipPlain(raw, i); got != want {
			t.Fatalf("skipPlain(%q, %d) = %d, want %d", raw, i, got, want)
		}
	})
}

// stringEdgeCorpus is strings around the word sizes of skipPlain (up to 40 bytes of content) with
// a quote, a backslash, an escape, a control byte, a multi-byte character or invalid UTF-8 at every
// position, so at every position of a word and across word boundaries; each alone, in an object,
// after a key, and cut before its closing quote (where the string runs to the end of raw and the
// last-word load reads it).
func stringEdgeCorpus() []string {
	inserts := []string{`"`, `\`, `\"`, `\\`, `\u00e9`, `\ud83d\ude00`, `\ud800`, `\q`, "\x00", "\n", "\x1f", "\x7f", "\x80",
		"\xff", "\xc3\xa9", "\xc3", "\xe6\x97\xa5", "\xe6\x97", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xf4\x90\x80\x80"}
	var out []string
	for n := range 41 {
		for pos := 0; pos <= n; pos++ {
			for _, ins := range inserts {
				body := strings.Repeat("x", pos) + ins + strings.Repeat("y", n-pos)
				out = append(out, `"`+body+`"`, `{"k":"`+body+`"}`, `{"`+body+`":1}`, `"`+body, `["`+body)
			}
		}
	}
	return out
}

// TestScanStringEdges: on every string of stringEdgeCorpus, the scanner agrees with the
// three-pass rule and the shape's references (checkAgainstReference).
func TestScanStringEdges(t *testing.T) {
	for _, in := range stringEdgeCorpus() {
		checkAgainstReference(t, []byte(in))
		if t.Failed() {
			return
		}
	}
}
