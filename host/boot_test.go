package host

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host/internal/depgraph"
	"github.com/astrid-go/astrid/host/manifest"
)

// bootManifest is a manifest for bootOrder: name, uplink or not, and its imports and exports as
// "ns/name@version" strings.
func bootManifest(name string, uplink bool, imports, exports []string) *manifest.Manifest {
	m := &manifest.Manifest{Package: manifest.Package{Name: name}, Imports: map[string]map[string]manifest.ImportDef{}, Exports: map[string]map[string]manifest.ExportDef{}}
	m.Capabilities.Uplink = uplink
	split := func(s string) (string, string, string) {
		iface, v, _ := strings.Cut(s, "@")
		ns, n, _ := strings.Cut(iface, "/")
		return ns, n, v
	}
	for _, s := range imports {
		ns, n, v := split(s)
		if m.Imports[ns] == nil {
			m.Imports[ns] = map[string]manifest.ImportDef{}
		}
		m.Imports[ns][n] = manifest.ImportDef{Version: v}
	}
	for _, s := range exports {
		ns, n, v := split(s)
		if m.Exports[ns] == nil {
			m.Exports[ns] = map[string]manifest.ExportDef{}
		}
		m.Exports[ns][n] = manifest.ExportDef{Version: v}
	}
	return m
}

// TestBootOrder: the order Boot starts capsules in and what each waits for: dependency order
// with the uplinks first, each non-uplink waiting for every uplink; on a cycle, the order given,
// each capsule waiting only for the providers before it (so the boot cannot deadlock).
func TestBootOrder(t *testing.T) {
	tests := []struct {
		name      string
		ms        []*manifest.Manifest
		wantOrder string // names
		wantDeps  string // name:deps;...
		wantCycle string
	}{
		{
			name: "uplinks first, each waited for",
			ms: []*manifest.Manifest{
				bootManifest("a", false, []string{"ns/b@^1"}, nil),
				bootManifest("b", false, nil, []string{"ns/b@1.0.0"}),
				bootManifest("up2", true, nil, []string{"chat/x@1.0.0"}),
				bootManifest("c", false, []string{"chat/x@*"}, nil),
				bootManifest("up1", true, nil, nil),
			},
			wantOrder: "up2 up1 b a c",
			wantDeps:  "a:up2,up1,b;b:up2,up1;up2:;c:up2,up1;up1:",
		},
		{
			name: "cycle: the order given, forward edges only",
			ms: []*manifest.Manifest{
				bootManifest("a", false, []string{"ns/z@^1"}, []string{"ns/x@1.0.0"}),
				bootManifest("b", false, []string{"ns/x@^1"}, []string{"ns/y@1.0.0"}),
				bootManifest("c", false, []string{"ns/y@^1"}, []string{"ns/z@1.0.0"}),
				bootManifest("up", true, nil, nil),
			},
			wantOrder: "up a b c",
			wantDeps:  "a:up;b:up,a;c:up,b;up:",
			wantCycle: "dependency cycle detected (involved nodes): a, b, c",
		},
		{name: "nothing", wantOrder: "", wantDeps: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order, deps, cycle := bootOrder(depgraph.New(tc.ms), tc.ms)
			name := func(k int) string { return tc.ms[k].ID() }
			var names, depStrs []string
			for _, k := range order {
				names = append(names, name(k))
			}
			for k, ds := range deps {
				var dn []string
				for _, d := range ds {
					dn = append(dn, name(d))
				}
				// deps are sorted by index; show them in boot order for reading.
				slices.SortFunc(dn, func(x, y string) int {
					return slices.IndexFunc(order, func(k int) bool { return name(k) == x }) - slices.IndexFunc(order, func(k int) bool { return name(k) == y })
				})
				depStrs = append(depStrs, name(k)+":"+strings.Join(dn, ","))
			}
			if got := strings.Join(names, " "); got != tc.wantOrder {
				t.Errorf("order %q, want %q", got, tc.wantOrder)
			}
			if got := strings.Join(depStrs, ";"); got != tc.wantDeps {
				t.Errorf("deps %q, want %q", got, tc.wantDeps)
			}
			if got := fmt.Sprint(cycle); (cycle != nil || tc.wantCycle != "") && got != tc.wantCycle {
				t.Errorf("cycle %q, want %q", got, tc.wantCycle)
			}
		})
	}
}
