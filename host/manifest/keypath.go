package manifest

import (
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// keyPath is a dotted key path such as component[1].capabilities.net. Each
// element is already formatted: a key name (see formatKey) or an array
// index "[n]". Every append copies, so a path can be extended from several
// places safely.
type keyPath []string

// key returns p extended by the key k.
func (p keyPath) key(k string) keyPath {
	q := make(keyPath, len(p), len(p)+1)
	copy(q, p)
	return append(q, formatKey(k))
}

// index returns p extended by the array index i.
func (p keyPath) index(i int) keyPath {
	q := make(keyPath, len(p), len(p)+1)
	copy(q, p)
	return append(q, indexElem(i))
}

// indexElem formats the path element of array index i.
func indexElem(i int) string { return "[" + strconv.Itoa(i) + "]" }

// String formats the path the way problems report it: keys joined with
// dots, indexes appended to the key they index.
func (p keyPath) String() string {
	var b strings.Builder
	for i, e := range p {
		if i > 0 && !strings.HasPrefix(e, "[") {
			b.WriteByte('.')
		}
		b.WriteString(e)
	}
	return b.String()
}

// maxKeyLen is the longest key formatKey writes out in full.
const maxKeyLen = 64

// formatKey returns k as it would be written in TOML: bare when it only
// uses A-Za-z0-9_- (and is not empty), quoted otherwise, so that keys that
// contain dots or brackets cannot be confused with path separators.
//
// A key longer than maxKeyLen bytes is shortened to its beginning followed
// by a hash of the whole key: such keys only occur in broken or hostile
// documents, and keeping path elements short keeps the cost of building
// and looking up paths linear in the size of the document.
func formatKey(k string) string {
	if len(k) > maxKeyLen {
		h := fnv.New64a()
		io.WriteString(h, k)
		prefix := k[:maxKeyLen]
		for !utf8.ValidString(prefix) {
			prefix = prefix[:len(prefix)-1]
		}
		return strconv.Quote(prefix+"…") + fmt.Sprintf("#%016x", h.Sum64())
	}
	if k != "" && strings.IndexFunc(k, func(r rune) bool { return !isBareKeyChar(r) }) < 0 {
		return k
	}
	return strconv.Quote(k)
}

func isBareKeyChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}
