package manifest

import "path/filepath"

// RuntimeVersion is the astrid-capsule version whose ABI this runtime
// implements; `package.astrid-version` requirements are checked against it.
const RuntimeVersion = "0.5.1"

// Manifest is a parsed and validated Capsule.toml: the upstream v0.5 schema
// plus this runtime's [limits], [restart] and capabilities.process_network.
// Optional values are filled with their defaults, so code that runs a
// capsule can use a Manifest as is.
type Manifest struct {
	// Path is the absolute path of Capsule.toml, "" for the default
	// manifest of a bare .wasm file (see ForWasm).
	Path string
	// Dir is the absolute capsule directory; component files are relative
	// to it.
	Dir string

	Package    Package
	Components []Component

	// Capabilities are the [capabilities] of the capsule, with the
	// capabilities of every component merged in as upstream v0.5 does:
	// fs_read, fs_write, host_process, net and net_bind lists are
	// concatenated (root entries first, then each component in order);
	// other component capabilities are ignored, with a warning.
	Capabilities Capabilities

	// Env holds the [env] variables the capsule asks for, by name.
	Env map[string]EnvDef

	Interceptors []Interceptor
	Topics       []Topic

	// Imports maps namespace -> interface -> requirement ([imports]).
	Imports map[string]map[string]ImportDef
	// Exports maps namespace -> interface -> version ([exports]).
	Exports map[string]map[string]ExportDef

	ContextFiles []ContextFile
	Commands     []Command
	MCPServers   []MCPServer
	Skills       []Skill
	Uplinks      []Uplink

	// Limits are the resource limits of the capsule ([limits]), defaults
	// filled in.
	Limits Limits
	// Restart is the restart policy of the capsule ([restart]), defaults
	// filled in.
	Restart Restart
}

// ID returns the capsule id, which is package.name.
func (m *Manifest) ID() string { return m.Package.Name }

// ValidID reports whether s is a valid capsule id (package.name): non-empty, only lowercase
// ASCII letters, digits and '-'. Such a name is also safe as a directory name.
func ValidID(s string) bool { return validID(s) }

// WasmPath returns the absolute path of the first component's .wasm file,
// the one the runtime loads, or "" when the manifest has no component.
func (m *Manifest) WasmPath() string {
	if len(m.Components) == 0 {
		return ""
	}
	return filepath.Join(m.Dir, filepath.FromSlash(m.Components[0].File))
}

// Package is the [package] section: the identity and metadata of the
// capsule. Only Name, Version and AstridVersion affect loading; the rest is
// carried for tools that list or publish capsules.
type Package struct {
	Name          string // capsule id: [a-z0-9-]+
	Version       string // strict semver MAJOR.MINOR.PATCH
	Description   string
	Authors       []string
	Repository    string
	Homepage      string
	Documentation string
	License       string
	LicenseFile   string // license-file
	Readme        string
	Keywords      []string
	Categories    []string
	AstridVersion string // astrid-version: a semver requirement on RuntimeVersion, "" when unset
	Publish       *bool  // nil when unset
	Include       []string
	Exclude       []string
	Metadata      map[string]any // free-form, as decoded from TOML
}

// Component is one [[component]]: a WebAssembly module of the capsule.
// Only the first component is loaded, as upstream does.
type Component struct {
	ID   string
	File string // path of the .wasm relative to the capsule directory (key file or entrypoint)
	Hash string // carried, unused by the loader
	Type string // "executable" (default) or "library"
	Link []string
	// Capabilities are the component's own capabilities as written; the
	// mergeable ones are also in Manifest.Capabilities.
	Capabilities Capabilities
}

// Capabilities is a [capabilities] table: what a capsule may do. Every
// field defaults to empty or false, so a capsule may do nothing it did not
// ask for.
type Capabilities struct {
	Uplink               bool     // long-lived uplink capsule: no call timeout, loads first, no [imports]
	Net                  []string // HTTP host allow-list
	KV                   []string // declared, not enforced (KV is always capsule-scoped)
	FSRead               []string // fs_read path prefixes
	FSWrite              []string // fs_write path prefixes
	HostProcess          []string // commands the capsule may spawn
	NetBind              []string // net_bind: any entry grants the CLI unix socket
	IPCPublish           []string // ipc_publish ACL patterns
	IPCSubscribe         []string // ipc_subscribe ACL patterns
	Identity             []string // resolve, link or admin
	AllowPromptInjection bool     // allow_prompt_injection
	ProcessNetwork       bool     // process_network: spawned processes share the host network
}

// EnvDef is one [env] variable that the capsule asks its operator for.
type EnvDef struct {
	Type        string // "secret", "string", "text", ...
	Request     string // the prompt shown to the operator
	Description string
	Default     any // any TOML value, as decoded; nil when unset
	EnumValues  []string
	Placeholder string
}

// Interceptor is one [[interceptor]]: the guest function Action handles
// events whose topic matches the pattern Event; lower Priority runs first.
type Interceptor struct {
	Event    string
	Action   string
	Priority int // default 100
}

// Topic is one [[topic]]: documentation of a topic the capsule publishes
// or subscribes to.
type Topic struct {
	Name        string
	Direction   string // "publish" or "subscribe"
	Description string
	Schema      string // path relative to the capsule directory, "" when unset
}

// ImportDef is one interface the capsule imports: Version is a semver
// requirement such as "^1.0"; an optional import does not fail the load
// when nothing provides it.
type ImportDef struct {
	Version  string
	Optional bool
}

// ExportDef is one interface the capsule provides, at an exact version.
type ExportDef struct {
	Version string
}

// ContextFile is one [[context_file]]: a file injected as static context.
type ContextFile struct {
	Name string
	File string
}

// Command is one [[command]]: a slash command.
type Command struct {
	Name        string
	Description string
	File        string
}

// MCPServer is one [[mcp_server]]. Type "stdio" makes the host run Command
// with Args as an MCP server.
type MCPServer struct {
	ID          string
	Description string
	Type        string
	Command     string
	Args        []string
}

// Skill is one [[skill]].
type Skill struct {
	Name        string
	Description string
	File        string
}

// Uplink is one [[uplink]]: a connection to a chat platform.
type Uplink struct {
	Name     string
	Platform string
	Profile  string // chat, interactive, notify or bridge
}
