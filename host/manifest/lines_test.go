package manifest

import (
	"strings"
	"testing"
)

func TestIndexLines(t *testing.T) {
	doc := `top = 1
[package]
name = "x"
[package.metadata]
deep.er = { k = 1 }

[[component]]
file = "a.wasm"
[component.capabilities]
net = [
  "a",
  "b",
]
[[component]]
capabilities.fs_read = ["x"]

"quoted.key" = { "in.ner" = [ { v = 1 }, [1, 2] ] }
[a.b]
c = 1
[a]
d = 2
[[x.y]]
[[x.y.z]]
w = 1
[[x.y]]
[[x.y.z]]
w = 2
`
	ix := indexLines([]byte(doc))
	tests := []struct {
		path keyPath
		line int
	}{
		{keyPath{"top"}, 1},
		{keyPath{"package"}, 2},
		{keyPath{"package", "name"}, 3},
		{keyPath{"package", "metadata"}, 4},
		{keyPath{"package", "metadata", "deep"}, 5},
		{keyPath{"package", "metadata", "deep", "er", "k"}, 5},
		{keyPath{"component"}, 7},
		{keyPath{"component", "[0]"}, 7},
		{keyPath{"component", "[0]", "file"}, 8},
		{keyPath{"component", "[0]", "capabilities"}, 9},
		{keyPath{"component", "[0]", "capabilities", "net"}, 10},
		{keyPath{"component", "[0]", "capabilities", "net", "[0]"}, 11},
		{keyPath{"component", "[0]", "capabilities", "net", "[1]"}, 12},
		{keyPath{"component", "[1]"}, 14},
		{keyPath{"component", "[1]", "capabilities"}, 15},
		{keyPath{"component", "[1]", "capabilities", "fs_read", "[0]"}, 15},
		{keyPath{"component", "[1]", `"quoted.key"`, `"in.ner"`, "[0]", "v"}, 17},
		{keyPath{"component", "[1]", `"quoted.key"`, `"in.ner"`, "[1]", "[1]"}, 17},
		{keyPath{"a"}, 20}, // the explicit [a] header wins over the implicit one of [a.b]
		{keyPath{"a", "b"}, 18},
		{keyPath{"a", "b", "c"}, 19},
		{keyPath{"a", "d"}, 21},
		{keyPath{"x", "y", "[0]", "z", "[0]", "w"}, 24},
		{keyPath{"x", "y", "[1]"}, 25},
		{keyPath{"x", "y", "[1]", "z", "[0]", "w"}, 27},
	}
	for _, tt := range tests {
		if got, ok := exactLine(ix, tt.path); !ok || got != tt.line {
			t.Errorf("line of %s = %d (present %v), want %d", tt.path, got, ok, tt.line)
		}
	}
	// Missing keys report the line of their closest ancestor.
	fallbacks := []struct {
		path keyPath
		line int
	}{
		{keyPath{"package", "version"}, 2},
		{keyPath{"component", "[1]", "file"}, 14},
		{keyPath{"limits", "memory"}, 0},
		{nil, 0},
	}
	for _, tt := range fallbacks {
		if got := ix.line(tt.path); got != tt.line {
			t.Errorf("line(%s) = %d, want %d", tt.path, got, tt.line)
		}
	}
}

func TestKeyPathString(t *testing.T) {
	p := keyPath{}.key("component").index(2).key("capabilities").key("net").index(0)
	if got := p.String(); got != "component[2].capabilities.net[0]" {
		t.Errorf("String() = %q", got)
	}
	if got := (keyPath{}).key("a.b").key("").key("[0]").String(); got != `"a.b"."".`+`"[0]"` {
		t.Errorf("String() = %q", got)
	}
}

// exactLine returns the line recorded for p itself, without falling back
// to an ancestor.
func exactLine(ix lineIndex, p keyPath) (int, bool) {
	n := ix.root
	for _, e := range p {
		if n = n.children[e]; n == nil {
			return 0, false
		}
	}
	return n.line, true
}

func TestFormatKeyLong(t *testing.T) {
	long1 := strings.Repeat("é", 40) + "a"
	long2 := strings.Repeat("é", 40) + "b"
	f1, f2 := formatKey(long1), formatKey(long2)
	if f1 == f2 || len(f1) > 2*maxKeyLen || !strings.Contains(f1, "…") {
		t.Errorf("formatKey of long keys = %q, %q", f1, f2)
	}
}

func TestIndexLinesDeep(t *testing.T) {
	// Deep documents are valid TOML; they must be indexed in linear time
	// and report the deepest indexed line.
	doc := "k = " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n" +
		strings.Repeat("a.", 20000) + "z = 1\n" +
		"[" + strings.Repeat("h.", 20000) + "z]\nx = 1\n"
	ix := indexLines([]byte(doc))
	if got := ix.line(keyPath{"k", "[0]", "[0]", "[0]"}); got != 1 {
		t.Errorf("line of k[0][0][0] = %d, want 1", got)
	}
	deep := keyPath{}
	for i := 0; i < 100; i++ {
		deep = deep.key("a")
	}
	if got := ix.line(deep); got != 2 {
		t.Errorf("line of a.a.a... = %d, want 2", got)
	}
}
