package manifest

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyPath is a dotted key path such as component[1].capabilities.net. Each
// element is already formatted: a key name (quoted when it is not a bare
// TOML key) or an array index "[n]". Paths are built by appending, and every
// append copies, so a path can be extended from several places safely.
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
	return append(q, "["+strconv.Itoa(i)+"]")
}

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

// formatKey returns k as it would be written in TOML: bare when it only
// uses A-Za-z0-9_- (and is not empty), quoted otherwise. Quoting keeps keys
// that contain dots or brackets from being confused with path separators.
func formatKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool { return !isBareKeyChar(r) }) < 0 {
		return k
	}
	return strconv.Quote(k)
}

func isBareKeyChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// maxIndexDepth bounds the number of elements (keys and indexes) of the
// paths the line index records. The manifest schema never nests deeper than
// a few levels; the bound keeps pathological documents (keys with
// thousands of dotted parts, thousands of nested arrays, all valid TOML)
// from costing quadratic time and memory. A deeper key reports the line of
// its closest indexed ancestor.
const maxIndexDepth = 32

// lineIndex maps dotted key paths to the 1-based line on which the key (or
// the header of the table) appears, so that problems found after decoding
// can point at a line.
type lineIndex struct {
	lines    map[string]int
	explicit map[string]bool
}

// line returns the line of p, or of its closest ancestor present in the
// document (for a missing key that is the header of its table), or 0.
func (ix lineIndex) line(p keyPath) int {
	for n := len(p); n > 0; n-- {
		if l, ok := ix.lines[p[:n].String()]; ok {
			return l
		}
	}
	return 0
}

// indexLines builds the line index of a TOML document that go-toml has
// already decoded successfully. It walks the document with go-toml's
// unstable parser, which exposes the byte range of every key, and follows
// the TOML rules that decide which table a key belongs to: [table] headers,
// [[array-of-tables]] headers (numbered in order, so the second
// [[component]] is component[1]), dotted keys, inline tables and arrays.
func indexLines(data []byte) lineIndex {
	ix := &indexer{
		lineIndex: lineIndex{lines: map[string]int{}, explicit: map[string]bool{}},
		arrays:    map[string]int{},
		atRoot:    true,
	}
	for i, c := range data {
		if c == '\n' {
			ix.newlines = append(ix.newlines, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	var table keyPath
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = ix.header(e, false)
		case unstable.ArrayTable:
			table = ix.header(e, true)
		case unstable.KeyValue:
			if table != nil || ix.atRoot {
				ix.keyValue(table, e)
			}
		}
	}
	return ix.lineIndex
}

// indexer holds the state of indexLines.
type indexer struct {
	lineIndex
	newlines []int          // byte offsets of every '\n' in the document
	arrays   map[string]int // path of each array of tables -> elements seen so far
	atRoot   bool           // key/values belong to the root table (no header yet)
}

// lineAt returns the 1-based line of a byte offset.
func (ix *indexer) lineAt(offset uint32) int {
	return sort.SearchInts(ix.newlines, int(offset)) + 1
}

// set records the line of p. A key written explicitly (a header or a
// key/value) wins over a table created implicitly by a longer header or a
// dotted key; otherwise the first occurrence wins.
func (ix *indexer) set(p keyPath, line int, explicit bool) {
	s := p.String()
	if _, ok := ix.lines[s]; ok && (ix.explicit[s] || !explicit) {
		return
	}
	ix.lines[s] = line
	ix.explicit[s] = explicit
}

// header records a [table] or [[array-of-tables]] header and returns the
// path of the table that the following key/values belong to, or nil when
// the header is too deep to index (its key/values are then not indexed).
func (ix *indexer) header(e *unstable.Node, array bool) keyPath {
	ix.atRoot = false
	var parts []string
	line := 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = ix.lineAt(k.Raw.Offset)
		}
		if len(parts) == maxIndexDepth/2 {
			// Each part may add an index too: stop before the bound.
			return nil
		}
		parts = append(parts, string(k.Data))
	}
	var p keyPath
	for i, k := range parts {
		p = p.key(k)
		if i < len(parts)-1 {
			// An intermediate key that names an array of tables refers to
			// its last element, as in [[component]] then
			// [component.capabilities].
			if n, ok := ix.arrays[p.String()]; ok && n > 0 {
				p = p.index(n - 1)
			}
			ix.set(p, line, false)
			continue
		}
		if array {
			s := p.String()
			n := ix.arrays[s]
			ix.arrays[s] = n + 1
			ix.set(p, line, false)
			p = p.index(n)
		}
		ix.set(p, line, true)
	}
	return p
}

// keyValue records a key/value (possibly with a dotted key) that belongs
// to the table at path table, and everything nested in its value.
func (ix *indexer) keyValue(table keyPath, e *unstable.Node) {
	p := table
	line := 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = ix.lineAt(k.Raw.Offset)
		}
		if len(p) >= maxIndexDepth {
			return // the parts indexed so far are on the same line
		}
		p = p.key(string(k.Data))
		if !it.IsLast() {
			ix.set(p, line, false)
		}
	}
	ix.set(p, line, true)
	ix.value(p, e.Value(), line)
}

// value records the keys nested inside an inline table or an array value
// found at path p on line line.
func (ix *indexer) value(p keyPath, v *unstable.Node, line int) {
	if v == nil || len(p) >= maxIndexDepth {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				ix.keyValue(p, kv)
			}
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			l := line
			if c.Raw.Length > 0 {
				l = ix.lineAt(c.Raw.Offset)
			}
			ep := p.index(i)
			ix.set(ep, l, true)
			ix.value(ep, c, l)
			i++
		}
	}
}
