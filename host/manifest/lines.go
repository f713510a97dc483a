package manifest

import (
	"sort"

	"github.com/pelletier/go-toml/v2/unstable"
)

// maxIndexDepth bounds the number of elements (keys and indexes) of the
// paths the line index records. The manifest schema never nests deeper than
// a few levels; the bound keeps pathological documents (keys with
// thousands of dotted parts, thousands of nested arrays, all valid TOML)
// cheap. A deeper key reports the line of its closest indexed ancestor.
const maxIndexDepth = 32

// lineIndex maps dotted key paths to the 1-based line on which the key (or
// the header of the table) appears, so that problems found after decoding
// can point at a line. It is a tree of path elements, so that recording a
// key costs the same however long the path of its table is.
type lineIndex struct {
	root *lineNode
}

// lineNode is the entry of one path element in a lineIndex.
type lineNode struct {
	line     int  // 0 only for the root
	explicit bool // written as a header or key/value, not created implicitly
	arrayLen int  // elements seen so far when the key is an array of tables
	children map[string]*lineNode
}

// line returns the line of p, or of its closest ancestor present in the
// document (for a missing key that is the header of its table), or 0.
func (ix lineIndex) line(p keyPath) int {
	line := 0
	n := ix.root
	for _, e := range p {
		if n == nil {
			break
		}
		n = n.children[e]
		if n != nil {
			line = n.line
		}
	}
	return line
}

// child returns the entry of element e under n, creating it if needed.
func (n *lineNode) child(e string) *lineNode {
	if c, ok := n.children[e]; ok {
		return c
	}
	if n.children == nil {
		n.children = map[string]*lineNode{}
	}
	c := &lineNode{}
	n.children[e] = c
	return c
}

// set records the line of n. A key written explicitly (a header or a
// key/value) wins over a table created implicitly by a longer header or a
// dotted key; otherwise the first occurrence wins.
func (n *lineNode) set(line int, explicit bool) {
	if n.line != 0 && (n.explicit || !explicit) {
		return
	}
	n.line, n.explicit = line, explicit
}

// indexLines builds the line index of a TOML document that go-toml has
// already decoded successfully. It walks the document with go-toml's
// unstable parser, which exposes the byte range of every key, and follows
// the TOML rules that decide which table a key belongs to: [table] headers,
// [[array-of-tables]] headers (numbered in order, so the second
// [[component]] is component[1]), dotted keys, inline tables and arrays.
func indexLines(data []byte) lineIndex {
	ix := &indexer{root: &lineNode{}}
	for i, c := range data {
		if c == '\n' {
			ix.newlines = append(ix.newlines, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	table, depth := ix.root, 0
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table, depth = ix.header(e, false)
		case unstable.ArrayTable:
			table, depth = ix.header(e, true)
		case unstable.KeyValue:
			if table != nil {
				ix.keyValue(table, depth, e)
			}
		}
	}
	return lineIndex{root: ix.root}
}

// indexer holds the state of indexLines.
type indexer struct {
	root     *lineNode
	newlines []int // byte offsets of every '\n' in the document
}

// lineAt returns the 1-based line of a byte offset.
func (ix *indexer) lineAt(offset uint32) int {
	return sort.SearchInts(ix.newlines, int(offset)) + 1
}

// header records a [table] or [[array-of-tables]] header and returns the
// entry of the table that the following key/values belong to and its
// depth, or nil when the header is too deep to index (its key/values are
// then not indexed and report the line of the deepest indexed ancestor).
func (ix *indexer) header(e *unstable.Node, array bool) (*lineNode, int) {
	n, depth, line := ix.root, 0, 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = ix.lineAt(k.Raw.Offset)
		}
		if depth+2 > maxIndexDepth { // a key and maybe an index
			return nil, 0
		}
		c := n.child(formatKey(string(k.Data)))
		depth++
		switch {
		case !it.IsLast():
			// An intermediate key that names an array of tables refers to
			// its last element, as in [[component]] then
			// [component.capabilities].
			c.set(line, false)
			if c.arrayLen > 0 {
				c = c.child(indexElem(c.arrayLen - 1))
				depth++
			}
			c.set(line, false)
		case array:
			i := c.arrayLen
			c.arrayLen++
			c.set(line, false)
			c = c.child(indexElem(i))
			depth++
			c.set(line, true)
		default:
			c.set(line, true)
		}
		n = c
	}
	return n, depth
}

// keyValue records a key/value (possibly with a dotted key) that belongs
// to the table n at the given depth, and everything nested in its value.
func (ix *indexer) keyValue(n *lineNode, depth int, e *unstable.Node) {
	line := 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = ix.lineAt(k.Raw.Offset)
		}
		if depth >= maxIndexDepth {
			return // the parts indexed so far are on the same line
		}
		n = n.child(formatKey(string(k.Data)))
		depth++
		if !it.IsLast() {
			n.set(line, false)
		}
	}
	n.set(line, true)
	ix.value(n, depth, e.Value(), line)
}

// value records the keys nested inside an inline table or an array value
// whose entry is n, found on line line.
func (ix *indexer) value(n *lineNode, depth int, v *unstable.Node, line int) {
	if v == nil || depth >= maxIndexDepth {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				ix.keyValue(n, depth, kv)
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
			en := n.child(indexElem(i))
			en.set(l, true)
			ix.value(en, depth+1, c, l)
			i++
		}
	}
}
