package depgraph

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host/manifest"
)

// entry is one [imports] or [exports] entry: namespace, interface, version (requirement).
type entry struct{ ns, name, version string }

// capsule builds a manifest with the given exports and (required) imports, as upstream's tests'
// make_manifest does.
func capsule(name string, exports, imports []entry) *manifest.Manifest {
	m := &manifest.Manifest{Package: manifest.Package{Name: name, Version: "0.1.0"}}
	if len(exports) > 0 {
		m.Exports = map[string]map[string]manifest.ExportDef{}
	}
	for _, e := range exports {
		if m.Exports[e.ns] == nil {
			m.Exports[e.ns] = map[string]manifest.ExportDef{}
		}
		m.Exports[e.ns][e.name] = manifest.ExportDef{Version: e.version}
	}
	if len(imports) > 0 {
		m.Imports = map[string]map[string]manifest.ImportDef{}
	}
	for _, i := range imports {
		if m.Imports[i.ns] == nil {
			m.Imports[i.ns] = map[string]manifest.ImportDef{}
		}
		m.Imports[i.ns][i.name] = manifest.ImportDef{Version: i.version}
	}
	return m
}

func bare(name string) *manifest.Manifest { return capsule(name, nil, nil) }

// TestImportSatisfiedBy: upstream's import_satisfied_by vectors, plus the caret meaning of a
// plain version and an exact version the requirement excludes.
func TestImportSatisfiedBy(t *testing.T) {
	tests := []struct {
		name                string
		impNS, impName, req string
		expNS, expName, ver string
		want                bool
	}{
		{"exact match", "astrid", "session", "^1.0", "astrid", "session", "1.2.3", true},
		{"version mismatch", "astrid", "session", "^2.0", "astrid", "session", "1.2.3", false},
		{"namespace mismatch", "astrid", "session", "^1.0", "other", "session", "1.0.0", false},
		{"name mismatch", "astrid", "session", "^1.0", "astrid", "identity", "1.0.0", false},
		{"wildcard version", "ns", "iface", "*", "ns", "iface", "99.0.0", true},
		{"semver range", "ns", "iface", "^1.0", "ns", "iface", "1.5.3", true},
		{"plain version is a caret requirement", "ns", "iface", "1.0", "ns", "iface", "1.5.3", true},
		{"plain version excludes the next major", "ns", "iface", "1.0", "ns", "iface", "2.0.0", false},
		{"range with an upper bound", "ns", "iface", ">=1.2, <2", "ns", "iface", "1.1.9", false},
		{"invalid requirement matches nothing", "ns", "iface", "^^1", "ns", "iface", "1.0.0", false},
		{"inexact export version matches nothing", "ns", "iface", "*", "ns", "iface", "1.0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ImportSatisfiedBy(tc.impNS, tc.impName, tc.req, tc.expNS, tc.expName, tc.ver); got != tc.want {
				t.Errorf("ImportSatisfiedBy(%s/%s %s, %s/%s %s) = %v, want %v", tc.impNS, tc.impName, tc.req, tc.expNS, tc.expName, tc.ver, got, tc.want)
			}
		})
	}
}

// TestSort: upstream's toposort vectors. Kahn's algorithm with a FIFO queue seeded in input order
// is deterministic, so each case checks the whole order (which implies upstream's "a before b"
// assertions).
func TestSort(t *testing.T) {
	tests := []struct {
		name      string
		in        []*manifest.Manifest
		want      string // names in order, space-separated
		wantCycle []string
	}{
		{name: "empty graph", in: nil, want: ""},
		{name: "single node", in: []*manifest.Manifest{bare("a")}, want: "a"},
		{name: "single node importing what nobody exports", in: []*manifest.Manifest{
			capsule("a", nil, []entry{{"ns", "missing", "^1.0"}})}, want: "a"},
		{name: "import export edge", in: []*manifest.Manifest{
			capsule("b", nil, []entry{{"astrid", "foo", "^1.0"}}),
			capsule("a", []entry{{"astrid", "foo", "1.0.0"}}, nil),
		}, want: "a b"},
		{name: "semver range match", in: []*manifest.Manifest{
			capsule("b", nil, []entry{{"ns", "iface", "^1.0"}}),
			capsule("a", []entry{{"ns", "iface", "1.5.3"}}, nil),
		}, want: "a b"},
		{name: "version mismatch adds no edge", in: []*manifest.Manifest{
			capsule("b", nil, []entry{{"ns", "iface", "^2.0"}}),
			capsule("a", []entry{{"ns", "iface", "1.5.3"}}, nil),
		}, want: "b a"},
		{name: "all providers ordered before consumer", in: []*manifest.Manifest{
			capsule("c", nil, []entry{{"ns", "stream", "^1.0"}}),
			capsule("a", []entry{{"ns", "stream", "1.0.0"}}, nil),
			capsule("b", []entry{{"ns", "stream", "1.1.0"}}, nil),
		}, want: "a b c"},
		{name: "unsatisfied requirement still succeeds", in: []*manifest.Manifest{
			bare("a"),
			capsule("b", nil, []entry{{"ns", "missing", "^1.0"}}),
		}, want: "a b"},
		{name: "self edge ignored", in: []*manifest.Manifest{
			capsule("a", []entry{{"ns", "x", "1.0.0"}}, []entry{{"ns", "x", "^1.0"}}),
			bare("b"),
		}, want: "a b"},
		{name: "cycle detected", in: []*manifest.Manifest{
			capsule("a", []entry{{"ns", "x", "1.0.0"}}, []entry{{"ns", "y", "^1.0"}}),
			capsule("b", []entry{{"ns", "y", "1.0.0"}}, []entry{{"ns", "x", "^1.0"}}),
		}, wantCycle: []string{"a", "b"}},
		{name: "three node cycle", in: []*manifest.Manifest{
			capsule("a", []entry{{"ns", "x", "1.0.0"}}, []entry{{"ns", "z", "^1.0"}}),
			capsule("b", []entry{{"ns", "y", "1.0.0"}}, []entry{{"ns", "x", "^1.0"}}),
			capsule("c", []entry{{"ns", "z", "1.0.0"}}, []entry{{"ns", "y", "^1.0"}}),
		}, wantCycle: []string{"a", "b", "c"}},
		{name: "a capsule behind a cycle is involved too", in: []*manifest.Manifest{
			bare("free"),
			capsule("a", []entry{{"ns", "x", "1.0.0"}}, []entry{{"ns", "y", "^1.0"}}),
			capsule("b", []entry{{"ns", "y", "1.0.0"}}, []entry{{"ns", "x", "^1.0"}}),
			capsule("behind", nil, []entry{{"ns", "x", "^1.0"}}),
		}, wantCycle: []string{"a", "b", "behind"}},
		{name: "no dependencies preserves all", in: []*manifest.Manifest{bare("x"), bare("y"), bare("z")}, want: "x y z"},
		{name: "diamond dependency", in: []*manifest.Manifest{
			capsule("d", []entry{{"ns", "d", "1.0.0"}}, []entry{{"ns", "b", "^1.0"}, {"ns", "c", "^1.0"}}),
			capsule("b", []entry{{"ns", "b", "1.0.0"}}, []entry{{"ns", "a", "^1.0"}}),
			capsule("c", []entry{{"ns", "c", "1.0.0"}}, []entry{{"ns", "a", "^1.0"}}),
			capsule("a", []entry{{"ns", "a", "1.0.0"}}, nil),
		}, want: "a b c d"},
		{name: "react requires identity and session", in: []*manifest.Manifest{
			capsule("astrid-capsule-react", nil, []entry{{"astrid", "identity", "^1.0"}, {"astrid", "session", "^1.0"}}),
			capsule("astrid-capsule-identity", []entry{{"astrid", "identity", "1.0.0"}}, nil),
			capsule("astrid-capsule-session", []entry{{"astrid", "session", "1.0.0"}}, nil),
		}, want: "astrid-capsule-identity astrid-capsule-session astrid-capsule-react"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order, err := New(tc.in).Sort()
			if tc.wantCycle != nil {
				ce, ok := err.(*CycleError)
				if !ok {
					t.Fatalf("Sort = %v, %v; want a cycle of %v", order, err, tc.wantCycle)
				}
				if strings.Join(ce.Cycle, ",") != strings.Join(tc.wantCycle, ",") {
					t.Errorf("cycle %v, want %v", ce.Cycle, tc.wantCycle)
				}
				want := "dependency cycle detected (involved nodes): " + strings.Join(tc.wantCycle, ", ")
				if err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sort: %v", err)
			}
			var names []string
			for _, k := range order {
				names = append(names, tc.in[k].ID())
			}
			if got := strings.Join(names, " "); got != tc.want {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
}

// TestImports: what the boot checks read from the graph: each import's providers (others only),
// whether the importer satisfies it itself, and the interfaces several capsules export.
func TestImports(t *testing.T) {
	in := []*manifest.Manifest{
		capsule("c", nil, []entry{{"ns", "stream", "^1.0"}, {"ns", "gone", "*"}}),
		capsule("a", []entry{{"ns", "stream", "1.0.0"}}, nil),
		capsule("b", []entry{{"ns", "stream", "1.1.0"}, {"ns", "old", "0.9.0"}}, nil),
		capsule("self", []entry{{"ns", "x", "1.0.0"}}, []entry{{"ns", "x", "^1.0"}, {"ns", "old", "^1.0"}}),
	}
	g := New(in)
	tests := []struct {
		name      string
		capsule   int
		imp       int
		want      string
		providers []int
		self      bool
		satisfied bool
	}{
		{"unsatisfied", 0, 0, "ns/gone *", nil, false, false},
		{"two providers", 0, 1, "ns/stream ^1.0", []int{1, 2}, false, true},
		{"version too old", 3, 0, "ns/old ^1.0", nil, false, false},
		{"satisfied by itself", 3, 1, "ns/x ^1.0", nil, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			imp := g.Imports[tc.capsule][tc.imp]
			if imp.String() != tc.want || !slices.Equal(imp.Providers, tc.providers) || imp.Self != tc.self || imp.Satisfied() != tc.satisfied {
				t.Errorf("import %d of %s = %+v (satisfied %v); want %s from %v, self %v, satisfied %v",
					tc.imp, in[tc.capsule].ID(), imp, imp.Satisfied(), tc.want, tc.providers, tc.self, tc.satisfied)
			}
		})
	}
	if got := g.Providers(0); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("Providers(c) = %v, want [1 2]", got)
	}
	dups := g.Duplicates()
	if len(dups) != 1 || dups[0].String() != "ns/stream" || strings.Join(dups[0].Providers, ",") != "a,b" {
		t.Errorf("Duplicates = %+v, want ns/stream from a and b", dups)
	}
}

// TestManyInterfaces: a hostile manifest's [exports] or [imports] can hold tens of thousands of
// interfaces (a 1 MiB Capsule.toml has room for about 60 000). Matching them costs each import a
// look-up of its interface, not a scan of every capsule's exports: 50 000 exports met by 50 000
// imports (and 50 000 that meet none) build and sort in well under a second where the product
// of the two would take hours.
func TestManyInterfaces(t *testing.T) {
	const n = 50_000
	var exports, imports, strays []entry
	for k := range n {
		name := fmt.Sprintf("i%d", k)
		exports = append(exports, entry{"ns", name, "1.0.0"})
		imports = append(imports, entry{"ns", name, "^1"})
		strays = append(strays, entry{"other", name, "^1"})
	}
	in := []*manifest.Manifest{capsule("consumer", nil, imports), capsule("provider", exports, nil), capsule("stray", nil, strays)}
	done := make(chan string, 1)
	go func() {
		g := New(in)
		order, err := g.Sort()
		done <- fmt.Sprint(order, err, len(g.Imports[0][n-1].Providers), len(g.Imports[2][0].Providers))
	}()
	select {
	case got := <-done:
		if got != "[1 2 0] <nil> 1 0" {
			t.Errorf("got %s, want order [1 2 0], each import met once, the strays not", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("building and sorting the graph took more than 30 s")
	}
}
