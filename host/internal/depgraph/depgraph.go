// Package depgraph orders capsules by their [imports] and [exports], as upstream Astrid's
// toposort.rs (v0.5.0) does: an edge runs from every other capsule that exports an interface a
// capsule imports to that capsule, and Kahn's algorithm with a FIFO queue seeded in input order
// gives the order. It also makes the checks upstream's kernel makes before it boots
// (validate_imports_exports): interfaces exported by several capsules, and imports nothing
// exports.
package depgraph

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/astrid-go/astrid/host/manifest"
)

// ImportSatisfiedBy reports whether an import of importNS/importName with the version
// requirement req is met by an export of exportNS/exportName at exportVersion: the namespaces and
// the names must be equal and the requirement must match the version. req means what it means in
// a manifest (manifest.ParseRequirement: "1.0" is "^1.0", "*" is any version); exportVersion is an
// exact version. Either one that does not parse matches nothing.
func ImportSatisfiedBy(importNS, importName, req, exportNS, exportName, exportVersion string) bool {
	if importNS != exportNS || importName != exportName {
		return false
	}
	c, err := manifest.ParseRequirement(req)
	if err != nil {
		return false
	}
	v, err := semver.StrictNewVersion(exportVersion)
	if err != nil {
		return false
	}
	return versionMatches(c, v)
}

// versionMatches is the version half of the rule: the requirement matches the exact version
// (semver's rules: a pre-release matches only a requirement that names one).
func versionMatches(c *semver.Constraints, v *semver.Version) bool { return c.Check(v) }

// Import is one interface a capsule imports, and who provides it.
type Import struct {
	Namespace, Name string
	// Requirement is the import's version requirement as the manifest writes it.
	Requirement string
	Optional    bool
	// Providers are the other capsules (indices into the graph's input, ascending) that export
	// a version of the interface the requirement matches.
	Providers []int
	// Self is true when the importing capsule's own exports satisfy the import. Upstream's
	// ordering ignores such a self edge; its boot check counts the import as satisfied.
	Self bool
}

// String is the import as logs show it: "namespace/name requirement".
func (i Import) String() string { return i.Namespace + "/" + i.Name + " " + i.Requirement }

// Satisfied reports whether some capsule, the importer itself included, exports the interface at
// a matching version.
func (i Import) Satisfied() bool { return len(i.Providers) > 0 || i.Self }

// Graph is the dependency graph of a list of capsules.
type Graph struct {
	names []string
	// Imports[k] are capsule k's imports, ordered by namespace then name.
	Imports [][]Import
	// exports maps each exported interface to its exporters, in input order.
	exports map[iface][]exporter
}

// iface is an interface: namespace and name.
type iface struct{ ns, name string }

// exporter is a capsule that exports an interface, and the version it exports (nil when it does
// not parse: it then meets no requirement).
type exporter struct {
	k       int
	version *semver.Version
}

// New builds the graph of ms: for each import of each capsule, the other capsules whose exports
// satisfy it. Exports are indexed by interface, so the work grows with the number of imports and
// of exporters of each imported interface, not with their product: a manifest (1 MiB at most)
// with tens of thousands of [exports] or [imports] does not hold up a boot.
func New(ms []*manifest.Manifest) *Graph {
	g := &Graph{names: make([]string, len(ms)), Imports: make([][]Import, len(ms)), exports: map[iface][]exporter{}}
	for k, m := range ms {
		g.names[k] = m.ID()
		for ns, ifaces := range m.Exports {
			for name, def := range ifaces {
				v, err := semver.StrictNewVersion(def.Version)
				if err != nil {
					v = nil
				}
				key := iface{ns, name}
				g.exports[key] = append(g.exports[key], exporter{k, v})
			}
		}
	}
	// Requirements are parsed once each, and only for interfaces someone exports.
	reqs := map[string]*semver.Constraints{}
	parse := func(req string) *semver.Constraints {
		c, ok := reqs[req]
		if !ok {
			c, _ = manifest.ParseRequirement(req) // nil when invalid: it matches nothing
			reqs[req] = c
		}
		return c
	}
	for k, m := range ms {
		for _, ns := range sortedKeys(m.Imports) {
			for _, name := range sortedKeys(m.Imports[ns]) {
				def := m.Imports[ns][name]
				imp := Import{Namespace: ns, Name: name, Requirement: def.Version, Optional: def.Optional}
				for _, e := range g.exports[iface{ns, name}] {
					switch c := parse(def.Version); {
					case c == nil || e.version == nil || !versionMatches(c, e.version):
					case e.k == k:
						imp.Self = true
					default:
						imp.Providers = append(imp.Providers, e.k)
					}
				}
				g.Imports[k] = append(g.Imports[k], imp)
			}
		}
	}
	return g
}

// Providers returns the capsules capsule k depends on: the providers of all its imports, each
// once, ascending.
func (g *Graph) Providers(k int) []int {
	var out []int
	for _, imp := range g.Imports[k] {
		out = append(out, imp.Providers...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CycleError is the error of Sort when the capsules' imports form a cycle.
type CycleError struct {
	// Cycle names the capsules Kahn's algorithm could not order (in input order): those in a
	// cycle and those that depend on one.
	Cycle []string
}

func (e *CycleError) Error() string {
	return "dependency cycle detected (involved nodes): " + strings.Join(e.Cycle, ", ")
}

// Sort orders the capsules so that every provider comes before the capsules that import from it,
// with Kahn's algorithm as upstream runs it: an edge from every provider of every import (an
// import several capsules provide waits for all of them; a self edge is ignored; an import no
// other capsule provides adds no edge), the queue of capsules with no unmet edge seeded in input
// order and served first in, first out. It returns indices into the input. When the imports form
// a cycle it returns a *CycleError naming every capsule left unordered, and no order. Zero or one
// capsule is returned as is.
func (g *Graph) Sort() ([]int, error) {
	n := len(g.names)
	if n <= 1 {
		return identity(n), nil
	}
	dependents := make([][]int, n)
	inDegree := make([]int, n)
	for k, imps := range g.Imports {
		for _, imp := range imps {
			for _, p := range imp.Providers {
				dependents[p] = append(dependents[p], k)
				inDegree[k]++
			}
		}
	}
	var queue []int
	for k, d := range inDegree {
		if d == 0 {
			queue = append(queue, k)
		}
	}
	order := make([]int, 0, n)
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		order = append(order, k)
		for _, d := range dependents[k] {
			inDegree[d]--
			if inDegree[d] == 0 {
				queue = append(queue, d)
			}
		}
	}
	if len(order) != n {
		var cycle []string
		for k, d := range inDegree {
			if d > 0 {
				cycle = append(cycle, g.names[k])
			}
		}
		return nil, &CycleError{Cycle: cycle}
	}
	return order, nil
}

// Duplicate is an interface more than one capsule exports: upstream warns that both would
// handle its events.
type Duplicate struct {
	Namespace, Name string
	// Providers names the capsules that export it, in input order.
	Providers []string
}

func (d Duplicate) String() string { return fmt.Sprintf("%s/%s", d.Namespace, d.Name) }

// Duplicates lists the interfaces exported by more than one capsule, ordered by namespace then
// name.
func (g *Graph) Duplicates() []Duplicate {
	var out []Duplicate
	for key, es := range g.exports {
		if len(es) > 1 {
			d := Duplicate{Namespace: key.ns, Name: key.name}
			for _, e := range es {
				d.Providers = append(d.Providers, g.names[e.k])
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Duplicate) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

func identity(n int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = k
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
