package manifest

import "testing"

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
		path string
		line int
	}{
		{"top", 1},
		{"package", 2},
		{"package.name", 3},
		{"package.metadata", 4},
		{"package.metadata.deep", 5},
		{"package.metadata.deep.er.k", 5},
		{"component", 7},
		{"component[0]", 7},
		{"component[0].file", 8},
		{"component[0].capabilities", 9},
		{"component[0].capabilities.net", 10},
		{"component[0].capabilities.net[0]", 11},
		{"component[0].capabilities.net[1]", 12},
		{"component[1]", 14},
		{"component[1].capabilities", 15},
		{"component[1].capabilities.fs_read[0]", 15},
		{`component[1]."quoted.key"."in.ner"[0].v`, 17},
		{`component[1]."quoted.key"."in.ner"[1][1]`, 17},
		{"a", 20}, // the explicit [a] header wins over the implicit one of [a.b]
		{"a.b", 18},
		{"a.b.c", 19},
		{"a.d", 21},
		{"x.y[0].z[0].w", 24},
		{"x.y[1]", 25},
		{"x.y[1].z[0].w", 27},
	}
	for _, tt := range tests {
		if got, ok := ix.lines[tt.path]; !ok || got != tt.line {
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
