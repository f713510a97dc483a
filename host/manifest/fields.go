package manifest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// decoder turns the generic form of a TOML document (what go-toml produces
// for a map[string]any) into a Manifest. It collects every problem instead
// of stopping at the first one, and gives each one the line of its key.
//
// Decoding from the generic form rather than straight into structs lets the
// manifest accept the several shapes upstream allows for one key (a size
// as an integer or a string, an import as a string or a table), report
// every type error at once with its dotted key, and find unknown keys
// without decoding twice.
type decoder struct {
	file    string
	lines   lineIndex
	errs    Errors
	warns   []Problem
	wasmKey keyPath // key of the first component's wasm path, nil unless valid
}

// errorf records a problem that makes the manifest invalid.
func (d *decoder) errorf(p keyPath, format string, args ...any) {
	d.errs = append(d.errs, d.problem(p, fmt.Sprintf(format, args...)))
}

// warnf records a problem that does not make the manifest invalid.
func (d *decoder) warnf(p keyPath, format string, args ...any) {
	d.warns = append(d.warns, d.problem(p, fmt.Sprintf(format, args...)))
}

func (d *decoder) problem(p keyPath, msg string) Problem {
	return Problem{File: d.file, Line: d.lines.line(p), Key: p.String(), Message: msg}
}

// table is one TOML table being decoded. Every key read through its
// accessors is marked as known, whether it is present or not; done then
// reports the keys that nothing asked for as unknown.
type table struct {
	d    *decoder
	path keyPath
	m    map[string]any
	seen map[string]bool
}

// newTable wraps the generic table m found at path p.
func (d *decoder) newTable(p keyPath, m map[string]any) *table {
	return &table{d: d, path: p, m: m, seen: map[string]bool{}}
}

// asTable returns v (found at path p) as a table, or reports that it is not
// one. what describes the expected shape for the message, e.g. "a table
// such as [limits]".
func (d *decoder) asTable(p keyPath, v any, what string) (*table, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf(p, "must be %s, got %s", what, typeName(v))
		return nil, false
	}
	return d.newTable(p, m), true
}

// get returns the raw value of key k and marks k as known.
func (t *table) get(k string) (any, bool) {
	t.seen[k] = true
	v, ok := t.m[k]
	return v, ok
}

// has reports whether key k is present, without marking it as known.
func (t *table) has(k string) bool {
	_, ok := t.m[k]
	return ok
}

// at returns the path of key k in this table.
func (t *table) at(k string) keyPath { return t.path.key(k) }

// keys returns the keys present in the table, sorted, and marks them all as
// known. It is for tables whose keys are names chosen by the capsule author
// ([env], [imports], ...).
func (t *table) keys() []string {
	ks := make([]string, 0, len(t.m))
	for k := range t.m {
		t.seen[k] = true
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// str returns the string at key k; ok is false when the key is absent or
// holds something other than a string (the latter is reported).
func (t *table) str(k string) (s string, ok bool) {
	v, present := t.get(k)
	if !present {
		return "", false
	}
	s, ok = v.(string)
	if !ok {
		t.d.errorf(t.at(k), "must be a string, got %s", typeName(v))
	}
	return s, ok
}

// requiredStr returns the non-empty string at key k, reporting a problem
// that ends with hint when it is missing, empty or not a string.
func (t *table) requiredStr(k, hint string) string {
	v, present := t.get(k)
	if !present {
		t.d.errorf(t.at(k), "required: %s", hint)
		return ""
	}
	s, ok := v.(string)
	switch {
	case !ok:
		t.d.errorf(t.at(k), "must be a string, got %s: %s", typeName(v), hint)
	case s == "":
		t.d.errorf(t.at(k), "must not be empty: %s", hint)
	}
	return s
}

// boolean returns the boolean at key k (false when absent or mistyped).
func (t *table) boolean(k string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		t.d.errorf(t.at(k), "must be a boolean (true or false), got %s", typeName(v))
	}
	return b
}

// integer returns the integer at key k; ok is false when the key is
// absent or not an integer (the latter is reported).
func (t *table) integer(k string) (n int64, ok bool) {
	v, present := t.get(k)
	if !present {
		return 0, false
	}
	n, ok = v.(int64)
	if !ok {
		t.d.errorf(t.at(k), "must be an integer, got %s", typeName(v))
	}
	return n, ok
}

// strList returns the array of strings at key k, reporting every element
// that is not a string.
func (t *table) strList(k string) []string {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		t.d.errorf(t.at(k), "must be an array of strings such as [\"a\", \"b\"], got %s", typeName(v))
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.d.errorf(t.at(k).index(i), "must be a string, got %s", typeName(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// sub returns the table at key k; ok is false when the key is absent or
// not a table (the latter is reported).
func (t *table) sub(k string) (*table, bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, false
	}
	return t.d.asTable(t.at(k), v, "a table")
}

// tableList returns the array of tables at key k ([[k]] sections or an
// array of inline tables). Elements that are not tables are reported and
// skipped; the index of each returned table is its index in the document.
func (t *table) tableList(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		if _, isTable := v.(map[string]any); isTable {
			t.d.errorf(t.at(k), "must be an array of tables: write [[%s]] (double brackets), not [%s]", t.at(k), t.at(k))
		} else {
			t.d.errorf(t.at(k), "must be an array of tables ([[%s]] sections), got %s", t.at(k), typeName(v))
		}
		return nil
	}
	out := make([]*table, 0, len(arr))
	for i, e := range arr {
		if sub, ok := t.d.asTable(t.at(k).index(i), e, "a table"); ok {
			out = append(out, sub)
		}
	}
	return out
}

// done reports every key of the table that no accessor asked for as an
// unknown key. hints adds an explanation for keys that are known not to be
// supported (sections of other upstream versions, for instance); other
// unknown keys get a "did you mean" suggestion when one is close.
func (t *table) done(hints map[string]string) {
	var unknown []string
	for k := range t.m {
		if !t.seen[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		msg := "unknown key; it is ignored"
		if h, ok := hints[k]; ok {
			msg += " (" + h + ")"
		} else if s := t.suggest(k); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		t.d.warnf(t.at(k), "%s", msg)
	}
}

// suggest returns the known key closest to k when it is close enough to be
// a likely typo, else "".
func (t *table) suggest(k string) string {
	best, bestDist := "", 3
	for cand := range t.seen {
		if t.has(cand) {
			continue // a key already used is not what the author meant
		}
		if dist := editDistance(strings.ToLower(k), cand); dist < bestDist || dist == bestDist && cand < best {
			best, bestDist = cand, dist
		}
	}
	if bestDist > len(k)/2 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in
// bytes, with '-' and '_' treated as equal (package keys use dashes,
// capability keys underscores).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if ca, cb := a[i-1], b[j-1]; ca == cb || (ca == '-' || ca == '_') && (cb == '-' || cb == '_') {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// typeName names the TOML type of a value decoded by go-toml.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case toml.LocalDate:
		return "local date"
	case toml.LocalTime:
		return "local time"
	case toml.LocalDateTime:
		return "local date-time"
	case time.Time:
		return "date-time"
	default:
		return fmt.Sprintf("%T", v)
	}
}
