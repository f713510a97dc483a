package guard

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// threePassValid is the payload rule as it was before the one-pass scanner (kept here as the
// reference FuzzCheckPayloadShape compares the scanner against): json.Valid, utf8.Valid, then a
// scan for depth, surrogates and overflowing numbers. It reports whether serde_json would parse raw as a JSON value:
// encoding/json's grammar, plus valid UTF-8, no lone surrogate in a \u
// escape, no number that overflows float64 and at most MaxJSONDepth levels
// of nesting.
func threePassValid(raw []byte) bool {
	if !json.Valid(raw) || !utf8.Valid(raw) {
		return false
	}
	// raw is well-formed from here on, so the scan below cannot run past a
	// string's closing quote or a \u escape's four digits.
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '{' || c == '[':
			depth++
			if depth > MaxJSONDepth {
				return false
			}
		case c == '}' || c == ']':
			depth--
		case c == '"':
			for i++; raw[i] != '"'; i++ {
				if raw[i] != '\\' {
					continue
				}
				i++
				if raw[i] != 'u' {
					continue
				}
				r := refHex4(raw[i+1 : i+5])
				i += 4
				switch {
				case r >= 0xDC00 && r <= 0xDFFF:
					return false // a low surrogate without a high one
				case r >= 0xD800 && r <= 0xDBFF:
					if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
						return false
					}
					if lo := refHex4(raw[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
						return false
					}
					i += 6
				}
			}
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(raw) && refIsNumberByte(raw[j]) {
				j++
			}
			// Integers that fit 64 bits cannot overflow; anything else is
			// parsed as a float64 by serde_json, which refuses infinity.
			if j-i > 18 || bytes.ContainsAny(raw[i:j], ".eE") {
				f, _ := strconv.ParseFloat(string(raw[i:j]), 64)
				if math.IsInf(f, 0) {
					return false
				}
			}
			i = j - 1
		}
	}
	return true
}

// refIsNumberByte reports whether c can occur in a JSON number.
func refIsNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// refHex4 decodes four hexadecimal digits (already validated by json.Valid).
func refHex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
