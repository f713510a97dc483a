package manifest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// maxManifestSize bounds the size of a Capsule.toml. Real manifests are a
// few KiB; the bound keeps a broken or hostile file from costing the TOML
// decoder seconds (some of its paths are quadratic in key length).
const maxManifestSize = 1 << 20

// sectionHints explains top-level sections that other upstream versions
// have and this runtime ignores.
var sectionHints = map[string]string{
	"dependencies": "[dependencies] was removed in upstream v0.5; declare [imports] and [exports] instead",
	"tool":         "[[tool]] was removed in upstream v0.5; tools are an IPC convention on tool.v1.execute.<name>",
	"cron":         "[[cron]] was removed in upstream v0.5",
	"llm_provider": "[[llm_provider]] was removed in upstream v0.5",
	"publish":      "[publish] belongs to a newer upstream schema; this runtime reads capabilities.ipc_publish",
	"subscribe":    "[subscribe] belongs to a newer upstream schema; this runtime reads capabilities.ipc_subscribe and [[interceptor]]",
}

// capabilityHints explains capabilities of newer upstream versions that
// this runtime does not have.
var capabilityHints = map[string]string{
	"allow_persistent": "a capability of a newer upstream version that this runtime does not have",
	"net_connect":      "a capability of a newer upstream version that this runtime does not have",
	"bind_workers":     "a capability of a newer upstream version that this runtime does not have",
}

// Parse decodes and validates the Capsule.toml in data without touching the
// filesystem. path is the file's name, used in problems and to set
// Manifest.Path and Manifest.Dir (made absolute); it may be "".
//
// On success it returns the manifest with defaults filled in. Otherwise
// the error is an Errors listing every problem found, and the manifest is
// nil. Warnings (unknown keys, ignored component capabilities, ...) are
// returned in both cases. Documents larger than 1 MiB are refused.
func Parse(path string, data []byte) (m *Manifest, warnings []Problem, err error) {
	m, d, errs := parseWith(path, data)
	if d != nil {
		warnings = d.warns
	}
	if len(errs) > 0 {
		return nil, warnings, errs
	}
	return m, warnings, nil
}

// parseWith is Parse, returning the manifest decoded so far even when it
// has problems, and the decoder that holds them, so that Load can go on to
// check the wasm file and report everything at once. m and d are nil only
// when data is not valid TOML.
func parseWith(path string, data []byte) (*Manifest, *decoder, Errors) {
	if len(data) > maxManifestSize {
		return nil, nil, Errors{{File: path, Message: fmt.Sprintf("the manifest is %d bytes; a Capsule.toml may be at most %s", len(data), formatSize(maxManifestSize))}}
	}
	var doc map[string]any
	if err := decodeTOML(data, &doc); err != nil {
		return nil, nil, Errors{syntaxProblem(path, err)}
	}
	d := &decoder{file: path, lines: indexLines(data)}
	m := &Manifest{}
	if path != "" {
		m.Path = absPath(path)
		m.Dir = filepath.Dir(m.Path)
	}
	d.manifest(d.newTable(nil, doc), m)
	sortProblems(d.errs)
	sortProblems(d.warns)
	return m, d, d.errs
}

// decodeTOML decodes data into its generic form. go-toml is a third-party
// parser fed with operator-supplied files; a panic in it is turned into an
// error so that a bad manifest can never take the host down.
func decodeTOML(data []byte, doc *map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the TOML decoder: %v", r)
		}
	}()
	return toml.Unmarshal(data, doc)
}

// syntaxProblem turns a TOML decoding error into a Problem with the line
// and the column.
func syntaxProblem(path string, err error) Problem {
	p := Problem{File: path, Message: "invalid TOML: " + err.Error()}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		p.Line = line
		p.Message = fmt.Sprintf("invalid TOML at column %d: %s", col, strings.TrimPrefix(de.Error(), "toml: "))
		// de.Key() is relative to the table being decoded (a duplicate
		// package.name reports "name"), so it is left out: the line and
		// go-toml's message name the key well enough.
	}
	return p
}

// absPath makes path absolute, keeping it as is (cleaned) when the working
// directory is unknown.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// manifest decodes the top-level table into m.
func (d *decoder) manifest(root *table, m *Manifest) {
	if t, ok := root.sub("package"); ok {
		m.Package = d.pkg(t)
	} else if !root.has("package") {
		d.errorf(keyPath{"package"}, `required: a [package] section with at least name = "my-capsule" and version = "0.1.0"`)
	}

	comps := root.tableList("component")
	for i, t := range comps {
		m.Components = append(m.Components, d.component(t, i == 0))
		if i > 0 {
			d.warnf(t.path, "only the first [[component]] is loaded (as upstream); this one is not")
		}
	}
	if v, present := root.m["component"]; !present || len(comps) == 0 && isEmptyArray(v) {
		d.errorf(keyPath{"component"}, `required: at least one [[component]] with the capsule's .wasm file, e.g. [[component]] file = "my_capsule.wasm"`)
	}

	if t, ok := root.sub("capabilities"); ok {
		m.Capabilities = d.capabilities(t)
		d.checkPatterns(t, "ipc_publish")
		d.checkPatterns(t, "ipc_subscribe")
	}
	for i := range m.Components {
		mergeCapabilities(&m.Capabilities, &m.Components[i].Capabilities)
	}

	if t, ok := root.sub("env"); ok {
		m.Env = d.env(t)
	}
	m.Interceptors = d.interceptors(root.tableList("interceptor"), m.Capabilities.IPCSubscribe)
	m.Topics = d.topics(root.tableList("topic"))
	if t, ok := root.sub("imports"); ok {
		m.Imports = d.imports(t)
	}
	if t, ok := root.sub("exports"); ok {
		m.Exports = d.exports(t)
	}
	if m.Capabilities.Uplink && countInterfaces(m.Imports) > 0 {
		d.errorf(keyPath{"imports"}, "a capsule with capabilities.uplink = true cannot have [imports]: uplink capsules load before every other capsule, so nothing could provide them; remove [imports] or uplink")
	}

	m.ContextFiles = d.contextFiles(root.tableList("context_file"))
	m.Commands = d.commands(root.tableList("command"))
	m.MCPServers = d.mcpServers(root.tableList("mcp_server"))
	m.Skills = d.skills(root.tableList("skill"))
	m.Uplinks = d.uplinks(root.tableList("uplink"))

	limits, _ := root.sub("limits")
	m.Limits = d.limits(limits)
	restart, _ := root.sub("restart")
	m.Restart = d.restart(restart)

	root.done(sectionHints)
}

func isEmptyArray(v any) bool {
	a, ok := v.([]any)
	return ok && len(a) == 0
}

// pkg decodes [package].
func (d *decoder) pkg(t *table) Package {
	var p Package
	if name, ok := t.str("name"); ok {
		p.Name = name
		if !validID(name) {
			d.errorf(t.at("name"), "%q is not a valid capsule id: capsule id must contain only lowercase alphanumeric characters and hyphens (e.g. \"my-capsule\")", name)
		}
	} else if !t.has("name") {
		d.errorf(t.at("name"), `required: the capsule id, e.g. name = "my-capsule"`)
	}
	if v, ok := t.str("version"); ok {
		p.Version = v
		d.checkVersion(t.at("version"), v)
	} else if !t.has("version") {
		d.errorf(t.at("version"), `required: the capsule version as strict semver MAJOR.MINOR.PATCH, e.g. version = "0.1.0"`)
	}
	if req, ok := t.str("astrid-version"); ok {
		p.AstridVersion = req
		d.checkAstridVersion(t.at("astrid-version"), req)
	}
	p.Description, _ = t.str("description")
	p.Authors = t.strList("authors")
	p.Repository, _ = t.str("repository")
	p.Homepage, _ = t.str("homepage")
	p.Documentation, _ = t.str("documentation")
	p.License, _ = t.str("license")
	p.LicenseFile, _ = t.str("license-file")
	p.Readme, _ = t.str("readme")
	p.Keywords = t.strList("keywords")
	p.Categories = t.strList("categories")
	if v, ok := t.get("publish"); ok {
		if b, isBool := v.(bool); isBool {
			p.Publish = &b
		} else {
			d.errorf(t.at("publish"), "must be a boolean (true or false), got %s", typeName(v))
		}
	}
	p.Include = t.strList("include")
	p.Exclude = t.strList("exclude")
	if v, ok := t.get("metadata"); ok {
		if md, isTable := v.(map[string]any); isTable {
			p.Metadata = md
		} else {
			d.errorf(t.at("metadata"), "must be a table ([package.metadata]) of free-form values, got %s", typeName(v))
		}
	}
	t.done(nil)
	return p
}

// validID reports whether s is a valid capsule id: non-empty, [a-z0-9-].
func validID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// component decodes one [[component]]. For the first one (the one that is
// loaded) it records in d.wasmKey the key naming a valid wasm path, for
// Load to check the file.
func (d *decoder) component(t *table, first bool) Component {
	var c Component
	c.ID, _ = t.str("id")
	file, hasFile := t.str("file")
	entry, hasEntry := t.str("entrypoint")
	fileSet, entrySet := t.has("file"), t.has("entrypoint")
	switch {
	case fileSet && entrySet:
		d.errorf(t.at("entrypoint"), "entrypoint is another name for file: set only one of them")
	case hasFile:
		c.File = file
		if d.checkLocalPath(t.at("file"), file, "the .wasm file", "my_capsule.wasm") && first {
			d.wasmKey = t.at("file")
		}
	case hasEntry:
		c.File = entry
		if d.checkLocalPath(t.at("entrypoint"), entry, "the .wasm file", "my_capsule.wasm") && first {
			d.wasmKey = t.at("entrypoint")
		}
	case !fileSet && !entrySet:
		d.errorf(t.at("file"), `required: the path of the capsule's .wasm file relative to the capsule directory, e.g. file = "my_capsule.wasm"`)
	}
	c.Hash, _ = t.str("hash")
	c.Type = "executable"
	if typ, ok := t.str("type"); ok {
		if typ != "executable" && typ != "library" {
			d.errorf(t.at("type"), "%q is not a component type; want \"executable\" (the default) or \"library\"", typ)
		} else {
			c.Type = typ
		}
	}
	c.Link = t.strList("link")
	if ct, ok := t.sub("capabilities"); ok {
		c.Capabilities = d.capabilities(ct)
		d.warnUnmerged(ct.path, c.Capabilities)
	}
	t.done(nil)
	return c
}

// checkLocalPath checks that s, the value of the key at p naming what
// (e.g. "the .wasm file"), is a file path inside the capsule directory:
// relative, not leaving the directory through "..", and not the directory
// itself. example is a valid value for the message.
func (d *decoder) checkLocalPath(p keyPath, s, what, example string) bool {
	switch {
	case s == "":
		d.errorf(p, "must not be empty: the path of %s relative to the capsule directory, e.g. %q", what, example)
	case strings.ContainsRune(s, 0):
		d.errorf(p, "%q contains a NUL byte; want the path of %s relative to the capsule directory, e.g. %q", s, what, example)
	case !filepath.IsLocal(filepath.FromSlash(s)):
		d.errorf(p, "%q is not inside the capsule directory: the path of %s must be relative to the directory of Capsule.toml and must not leave it (no absolute path, no \"..\" above it), e.g. %q", s, what, example)
	case filepath.Clean(filepath.FromSlash(s)) == ".":
		d.errorf(p, "%q is the capsule directory itself; want the path of %s inside it, e.g. %q", s, what, example)
	default:
		return true
	}
	return false
}
