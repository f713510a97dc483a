package identity

import (
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ParseUUID parses s as upstream's Uuid::parse_str (the uuid crate, 1.x) does: 32 hex digits,
// the hyphenated 8-4-4-4-12 form, that form in braces, or it after "urn:uuid:" (lower case);
// hex digits of either case. A failure's text is the crate's, which upstream shows the guest
// after "invalid UUID: ".
func ParseUUID(s string) (uuid.UUID, error) {
	if u, ok := tryParseUUID(s); ok {
		return u, nil
	}
	return uuid.Nil, uuidError(s)
}

// tryParseUUID is the crate's try_parse: the forms by their exact lengths.
func tryParseUUID(s string) (uuid.UUID, bool) {
	switch {
	case len(s) == 32:
		return decodeHex(s)
	case len(s) == 36:
		return decodeHyphenated(s)
	case len(s) == 38 && s[0] == '{' && s[37] == '}':
		return decodeHyphenated(s[1:37])
	case len(s) == 45 && s[:9] == "urn:uuid:":
		return decodeHyphenated(s[9:])
	}
	return uuid.Nil, false
}

func decodeHyphenated(s string) (uuid.UUID, bool) {
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return uuid.Nil, false
	}
	return decodeHex(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
}

func decodeHex(s string) (uuid.UUID, bool) {
	var u uuid.UUID
	if len(s) != 32 {
		return u, false
	}
	if _, err := hex.Decode(u[:], []byte(s)); err != nil {
		return uuid.Nil, false
	}
	return u, true
}

// uuidError is the crate's InvalidUuid::into_err: what is wrong with s, found the way the crate
// looks for it.
func uuidError(input string) error {
	if !utf8.ValidString(input) {
		return fmt.Errorf("non-UTF8 input")
	}
	s, offset, simple := input, 0, true
	switch {
	case len(input) >= 2 && input[0] == '{' && input[len(input)-1] == '}':
		s, offset, simple = input[1:len(input)-1], 1, false
	case len(input) >= 9 && input[:9] == "urn:uuid:":
		s, offset, simple = input[9:], 9, false
	}
	hyphens := 0
	var bounds [4]int
	for i, r := range s {
		switch {
		case r >= utf8.RuneSelf:
			return invalidUUIDChar(r, i+offset+1)
		case r == '-':
			if hyphens < 4 {
				bounds[hyphens] = i
			}
			hyphens++
		case !isHexDigit(byte(r)):
			return invalidUUIDChar(r, i+offset+1)
		}
	}
	if hyphens == 0 && simple {
		return fmt.Errorf("invalid length: expected length 32 for simple format, found %d", len(input))
	}
	if hyphens != 4 {
		return fmt.Errorf("invalid group count: expected 5, found %d", hyphens+1)
	}
	starts := [5]int{0, 9, 14, 19, 24}
	expected := [5]int{8, 4, 4, 4, 12}
	for g := 0; g < 4; g++ {
		if bounds[g] != starts[g+1]-1 {
			return fmt.Errorf("invalid group length in group %d: expected %d, found %d", g, expected[g], bounds[g]-starts[g])
		}
	}
	// The crate measures the last group from the whole input, prefix included.
	return fmt.Errorf("invalid group length in group 4: expected 12, found %d", len(input)-starts[4])
}

func invalidUUIDChar(r rune, index int) error {
	return fmt.Errorf("invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `%c` at %d", r, index)
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
