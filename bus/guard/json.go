package guard

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// ErrPayloadNotJSON is upstream's error for a guest payload that does not
// parse as JSON.
var ErrPayloadNotJSON = errors.New("IPC payload is not valid JSON")

// MaxJSONDepth is the deepest nesting of arrays and objects a guest payload
// may have. Upstream parses payloads with serde_json, whose default recursion
// limit of 128 lets 127 levels through and rejects the 128th as invalid JSON.
const MaxJSONDepth = 127

// PayloadShape is what the pass of CheckPayloadShape learns about a payload it
// accepts that converting the payload needs (bus.ConvertShaped), so the host,
// which checks every publish, does not scan it a second time.
type PayloadShape uint8

const (
	// ShapeObject: the payload is a JSON object.
	ShapeObject PayloadShape = 1 << iota
	// ShapeTypeKey: the payload is an object and one of its own members (not
	// a nested one) has the key "type", or a key written with an escape,
	// which may read "type". Only such a payload can be one of upstream's
	// tagged variants.
	ShapeTypeKey
	// ShapeSpace: the payload has whitespace outside its strings, so its
	// compact form differs from it.
	ShapeSpace
)

// CheckPayload returns ErrPayloadNotJSON unless serde_json, which upstream
// reads payloads with, would parse raw as one JSON value: encoding/json's
// grammar (json.Valid), and also valid UTF-8, no lone UTF-16 surrogate in a
// \u escape, no number that overflows float64 ("1e400") and at most
// MaxJSONDepth levels of nesting. It is the JSON rule of a publish, which the
// shim and the host both apply (through Guard.CheckPublish) and
// bus.PayloadFromGuest relies on.
func CheckPayload(raw []byte) error {
	_, err := CheckPayloadShape(raw)
	return err
}

// CheckPayloadShape is CheckPayload that also returns the shape of an
// accepted payload. It reads raw once, allocating nothing (except for a
// number too large to be bounded without strconv.ParseFloat).
func CheckPayloadShape(raw []byte) (PayloadShape, error) {
	shape, ok := scanPayload(raw)
	if !ok {
		return 0, ErrPayloadNotJSON
	}
	return shape, nil
}

// The states of scanPayload between tokens.
const (
	wantValue  = iota // a value (after '[', ',' in an array, ':' or at the start)
	wantKey           // a member's key (after '{' or ',' in an object)
	afterValue        // ',', a closing bracket, or the end
)

// scanPayload is the one pass behind CheckPayloadShape: it reports whether
// raw is one JSON value by the rules of CheckPayload, and its shape. It keeps
// a bit per open container (object or array) for the up to MaxJSONDepth
// levels it allows, in a fixed array.
func scanPayload(raw []byte) (PayloadShape, bool) {
	var (
		shape    PayloadShape
		inObject [(MaxJSONDepth + 63) / 64]uint64 // bit d-1: the container at depth d is an object
		depth    int
		state    = wantValue
		n        = len(raw)
		i        int
	)
	for {
		// Whitespace may stand before and after every token.
		if j := skipSpace(raw, i); j != i {
			shape |= ShapeSpace
			i = j
		}
		switch state {
		case wantValue:
			if i >= n {
				return 0, false
			}
			switch c := raw[i]; c {
			case '{', '[':
				if depth == MaxJSONDepth {
					return 0, false
				}
				word, bit := depth/64, uint64(1)<<(depth%64)
				depth++
				i++
				if c == '{' {
					inObject[word] |= bit
					if depth == 1 {
						shape |= ShapeObject
					}
					state = wantKey
				} else {
					inObject[word] &^= bit
				}
				// An empty container closes at once.
				if j := skipSpace(raw, i); j < n && raw[j] == c+2 { // '{'+2 == '}', '['+2 == ']'
					if j != i {
						shape |= ShapeSpace
					}
					i = j + 1
					depth--
					state = afterValue
				}
				continue
			case '"':
				j, _, ok := scanString(raw, i+1)
				if !ok {
					return 0, false
				}
				i = j
			case 't':
				if !hasLiteral(raw, i, "true") {
					return 0, false
				}
				i += len("true")
			case 'f':
				if !hasLiteral(raw, i, "false") {
					return 0, false
				}
				i += len("false")
			case 'n':
				if !hasLiteral(raw, i, "null") {
					return 0, false
				}
				i += len("null")
			default:
				j, ok := scanNumber(raw, i)
				if !ok {
					return 0, false
				}
				i = j
			}
			state = afterValue

		case wantKey:
			if i >= n || raw[i] != '"' {
				return 0, false
			}
			j, escaped, ok := scanString(raw, i+1)
			if !ok {
				return 0, false
			}
			if depth == 1 && (escaped || string(raw[i+1:j-1]) == "type") {
				shape |= ShapeTypeKey
			}
			i = skipSpace(raw, j)
			if i != j {
				shape |= ShapeSpace
			}
			if i >= n || raw[i] != ':' {
				return 0, false
			}
			i++
			state = wantValue

		case afterValue:
			if depth == 0 {
				return shape, i == n
			}
			if i >= n {
				return 0, false
			}
			d := depth - 1
			object := inObject[d/64]&(uint64(1)<<(d%64)) != 0
			switch c := raw[i]; {
			case c == ',':
				i++
				if object {
					state = wantKey
				} else {
					state = wantValue
				}
			case (c == '}' && object) || (c == ']' && !object):
				i++
				depth--
			default:
				return 0, false
			}
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(raw []byte, i int) int {
	for i < len(raw) {
		// One comparison for the common byte, which is above ' ' (compact JSON has no space).
		if c := raw[i]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return i
		}
		i++
	}
	return i
}

// hasLiteral reports whether raw holds lit at i.
func hasLiteral(raw []byte, i int, lit string) bool {
	return len(raw)-i >= len(lit) && string(raw[i:i+len(lit)]) == lit
}

// plainStringByte marks the bytes that stand for themselves inside a JSON
// string: printable ASCII other than '"' and '\\'. It is the definition stopBytes computes a
// word at a time (and skipPlain's test of a string shorter than a word).
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// stopBytes marks the bytes of w (eight bytes of a string, little-endian) that end a run of
// plain ones: it is zero exactly when every byte is a plainStringByte, and otherwise its lowest
// set bit is the high bit of the first byte that is not ('"', '\\', below 0x20 or from 0x80 on).
// Bits above that one mean nothing: a borrow from that byte may set them for later bytes.
//
// Each term sets the high bit of a byte that fails one test, exactly for the first failing byte
// (no borrow reaches a byte from the plain ones before it): w itself for a byte from 0x80 on;
// b-0x20 wraps for a byte below 0x20; (b^'"')-1 and (b^'\\')-1 wrap for the two that are
// zero after the XOR. For a plain byte b (0x20..0x7f) no term sets the high bit: b-0x20 is below
// 0x60, and b^'"' and b^'\\' are in 1..0x7f.
func stopBytes(w uint64) uint64 {
	const ones = 0x0101010101010101
	return (w | (w - ones*0x20) | ((w ^ ones*'"') - ones) | ((w ^ ones*'\\') - ones)) & (ones * 0x80)
}

// skipPlain returns the index of the first byte at or after i that is not a plainStringByte, or
// len(raw) if there is none: one word first (a key or a short value ends in it), then 32 bytes
// at a time while a run of plain bytes lasts (the common long string is long runs of them), then
// a word at a time. It reads raw through reslices of s whose length the loop conditions bound,
// so the loads need no bounds checks.
func skipPlain(raw []byte, i int) int {
	s := raw[i:]
	if len(s) >= 8 {
		if m := stopBytes(binary.LittleEndian.Uint64(s)); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		s = s[8:]
	}
	for len(s) >= 32 {
		if stopBytes(binary.LittleEndian.Uint64(s[0:8]))|stopBytes(binary.LittleEndian.Uint64(s[8:16]))|
			stopBytes(binary.LittleEndian.Uint64(s[16:24]))|stopBytes(binary.LittleEndian.Uint64(s[24:32])) != 0 {
			break // the word loop finds which byte
		}
		s = s[32:]
	}
	for len(s) >= 8 {
		if m := stopBytes(binary.LittleEndian.Uint64(s)); m != 0 {
			return len(raw) - len(s) + bits.TrailingZeros64(m)/8
		}
		s = s[8:]
	}
	if len(s) == 0 {
		return len(raw)
	}
	if len(raw) >= 8 {
		// The last 1..7 bytes: the last word of raw, shifted so that they are its low bytes and
		// zeros (which stop) follow them. A stop at len(s) is the end of raw.
		w := binary.LittleEndian.Uint64(raw[len(raw)-8:]) >> (64 - 8*len(s))
		return len(raw) - len(s) + bits.TrailingZeros64(stopBytes(w))/8
	}
	for len(s) > 0 && plainStringByte[s[0]] {
		s = s[1:]
	}
	return len(raw) - len(s)
}

// scanString reads the rest of a string whose opening quote is just before
// i. It returns the index after the closing quote and whether the string has
// an escape, or false if the string is not valid: a control byte, a bad
// escape, invalid UTF-8, or a UTF-16 surrogate in a \u escape that is not a
// high one followed at once by a \u escape of a low one.
func scanString(raw []byte, i int) (end int, escaped, ok bool) {
	n := len(raw)
	for {
		if i = skipPlain(raw, i); i >= n {
			return 0, false, false
		}
		switch c := raw[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= n {
				return 0, false, false
			}
			switch raw[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hexRune(raw, i+2)
				if !ok {
					return 0, false, false
				}
				i += 6
				switch {
				case r >= 0xDC00 && r <= 0xDFFF:
					return 0, false, false // a low surrogate without a high one
				case r >= 0xD800 && r <= 0xDBFF:
					if i+1 >= n || raw[i] != '\\' || raw[i+1] != 'u' {
						return 0, false, false
					}
					if lo, ok := hexRune(raw, i+2); !ok || lo < 0xDC00 || lo > 0xDFFF {
						return 0, false, false
					}
					i += 6
				}
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		default: // the first byte of a multi-byte UTF-8 sequence, or not UTF-8
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, false
			}
			i += size
		}
	}
}

// hexRune decodes the four hexadecimal digits at raw[i:i+4] of a \u escape.
func hexRune(raw []byte, i int) (rune, bool) {
	if len(raw)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// maxSafeDecimalExponent bounds a number that cannot overflow float64: one
// below 10^308 is below math.MaxFloat64 (about 1.8e308).
const maxSafeDecimalExponent = 308

// scanNumber reads the JSON number at i: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
// It returns the index after it, or false if there is none or it overflows
// float64 (serde_json refuses infinity). Only a number that may be 10^308 or
// more is parsed to find out.
func scanNumber(raw []byte, i int) (int, bool) {
	n, start := len(raw), i
	if i < n && raw[i] == '-' {
		i++
	}
	// intDigits counts the integer part's significant digits: the number is
	// below 10^(intDigits+exp).
	intDigits := 0
	switch {
	case i < n && raw[i] == '0':
		i++
	case i < n && raw[i] >= '1' && raw[i] <= '9':
		j := i
		for i < n && isDigit(raw[i]) {
			i++
		}
		intDigits = i - j
	default:
		return 0, false
	}
	if i < n && raw[i] == '.' {
		i++
		if i >= n || !isDigit(raw[i]) {
			return 0, false
		}
		for i < n && isDigit(raw[i]) {
			i++
		}
	}
	exp := 0
	if i < n && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		negative := false
		if i < n && (raw[i] == '+' || raw[i] == '-') {
			negative = raw[i] == '-'
			i++
		}
		if i >= n || !isDigit(raw[i]) {
			return 0, false
		}
		for ; i < n && isDigit(raw[i]); i++ {
			if exp < 1<<20 { // saturate: any exponent this large decides alone
				exp = exp*10 + int(raw[i]-'0')
			}
		}
		if negative {
			exp = -exp
		}
	}
	if intDigits+exp > maxSafeDecimalExponent {
		f, _ := strconv.ParseFloat(string(raw[start:i]), 64)
		if math.IsInf(f, 0) {
			return 0, false
		}
	}
	return i, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
