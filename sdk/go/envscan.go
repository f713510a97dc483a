package astrid

import (
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The envelope decoder's lexical layer (see envelope.go): strings, the word scans for their
// plain runs, skipping a value, literals and byte comparisons, numbers, and unquoting. Each
// reads s.b from s.i and reports false on anything the fast path does not take.

// str scans a JSON string at its opening quote, checking its syntax, and
// returns the bounds of its content and whether it has escapes.
func (s *envScanner) str() (start, end int, escaped, ok bool) {
	b := s.b
	i := s.i + 1
	start = i
	for i < len(b) {
		i = plainRun(b, i)
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i == len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return start, i, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, 0, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, 0, false, false
				}
				for _, h := range b[i+2 : i+6] {
					if unhex(h) < 0 {
						return 0, 0, false, false
					}
				}
				i += 6
			default:
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		default:
			i++
		}
	}
	return 0, 0, false, false
}

// plainRun returns the index of the first 8-byte word of b at or after i
// that holds a byte that is not a plainStringByte (or the start of the last
// partial word), testing 8 bytes at a time: the payloads of an envelope are
// mostly long plain strings, and a byte loop costs the guest several times
// more in wasm.
func plainRun(b []byte, i int) int {
	// The words are loaded unsafely, as equalAt's are: the loop conditions keep them inside b,
	// and in wasm the bounds checks of b[i:] cost as much as the test. Four words a turn while 32
	// bytes are left (the payloads' long runs), then two, then one: half the loop's branches
	// again, which in wasm cost as much as the test.
	p := unsafe.Pointer(unsafe.SliceData(b))
	n := len(b)
	for i+32 <= n {
		if (specialBytes(*(*uint64)(unsafe.Add(p, i))) | specialBytes(*(*uint64)(unsafe.Add(p, i+8))) |
			specialBytes(*(*uint64)(unsafe.Add(p, i+16))) | specialBytes(*(*uint64)(unsafe.Add(p, i+24)))) != 0 {
			break
		}
		i += 32
	}
	for i+8 <= n {
		if specialBytes(*(*uint64)(unsafe.Add(p, i))) != 0 {
			return i
		}
		i += 8
	}
	return i
}

// specialBytes returns a word whose high bits mark the bytes of w that are not plainStringByte,
// zero exactly when there are none: a byte < 0x20, a zero byte of w ^ (8 × '"') (a '"') or of
// w ^ (8 × '\\') (a '\\'), each by the usual "has a zero byte" test (exact as to whether there is
// one; the terms may also mark some bytes after the first marked one).
func specialBytes(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	return ((w-ones*0x20)&^w | (q-ones)&^q | (bs-ones)&^bs) & highs
}

// plainStringByte tells the bytes that may appear as themselves in a JSON
// string and need no attention: all but '"', '\\' and control characters.
var plainStringByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// skip scans any JSON value, checking its syntax.
func (s *envScanner) skip(depth int) bool {
	switch c := s.peek(); {
	case c == '"':
		_, _, _, ok := s.str()
		return ok
	case c == '{':
		if depth >= maxSkipDepth {
			return false
		}
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		if depth >= maxSkipDepth {
			return false
		}
		s.i++
		if s.next(']') {
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			if s.next(',') {
				continue
			}
			return s.next(']')
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return false
}

// literal consumes lit.
func (s *envScanner) literal(lit string) bool {
	// Without slicing s.b, which in wasm costs more bounds checks than the comparison saves,
	// and small enough to be inlined (a call in wasm costs about as much as the comparison).
	if len(s.b)-s.i < len(lit) || !equalAt(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s.b)), s.i), unsafe.Pointer(unsafe.StringData(lit)), len(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// literalBytes consumes lit, as literal does.
func (s *envScanner) literalBytes(lit []byte) bool {
	if len(s.b)-s.i < len(lit) || !equalAt(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s.b)), s.i), unsafe.Pointer(unsafe.SliceData(lit)), len(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// equalBytes reports whether a and b hold the same bytes.
func equalBytes(a, b []byte) bool {
	return len(a) == len(b) && equalAt(unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.SliceData(b)), len(a))
}

// equalString reports whether a holds the bytes of s.
func equalString(a []byte, s string) bool {
	return len(a) == len(s) && equalAt(unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.StringData(s)), len(a))
}

// equalAt compares the n bytes at a and b 8 at a time: Go's wasm memequal (what == of strings
// compiles to) compares them one by one, and the literal keys, topics, source ids and timestamps
// an envelope's messages are matched against are ~190 bytes a message, ~20% of the decoder's time
// in wasm before. The loads are unsafe so that they need no bounds checks, which in wasm cost
// more than the comparison; the callers pass the lengths of the two slices or strings. It is
// small enough to be inlined into literal and literalBytes, and they into their callers: a call
// in wasm costs about as much as the comparison.
func equalAt(a, b unsafe.Pointer, n int) bool {
	i := 0
	for ; i+8 <= n; i += 8 {
		if *(*uint64)(unsafe.Add(a, i)) != *(*uint64)(unsafe.Add(b, i)) {
			return false
		}
	}
	for ; i < n; i++ {
		if *(*byte)(unsafe.Add(a, i)) != *(*byte)(unsafe.Add(b, i)) {
			return false
		}
	}
	return true
}

// number scans a JSON number.
func (s *envScanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits consumes a run of decimal digits and reports whether there was
// at least one.
func (s *envScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// unhex returns the value of the hex digit c, or -1.
func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// getu4 decodes the \uXXXX escape at the start of b, or returns -1.
func getu4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		h := unhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

// unquote decodes the content of a JSON string whose syntax str checked,
// as encoding/json does: a \u escape of a lone surrogate, and each byte of
// invalid UTF-8, become U+FFFD.
func unquote(b []byte) []byte {
	out := make([]byte, 0, len(b)+2*utf8.UTFMax)
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			switch b[i+1] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := getu4(b[i:])
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, getu4(b[i:])); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default: // '"', '\\', '/'
				out = append(out, b[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
	return out
}
