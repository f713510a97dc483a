package manifest

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The upstream example manifests of the reference notes (§1.5), given a
// [package] and a component file where they lacked one.
const (
	exampleReact = `[package]
name = "astrid-capsule-react"
version = "0.1.0"
description = "ReAct loop: stateless coordinator for LLM reasoning and tool execution"
astrid-version = ">=0.1.0"

[[component]]
id = "react"
file = "astrid_capsule_react.wasm"
type = "executable"

[[interceptor]]
event = "user.v1.prompt"
action = "handle_user_prompt"
[[interceptor]]
event = "llm.v1.stream.*"
action = "handle_llm_stream"
[[interceptor]]
event = "astrid.v1.watchdog.tick"
action = "handle_watchdog_tick"
priority = 10

[dependencies]
requires = ["topic:identity.v1.response.ready", "topic:session.v1.response.get_messages"]

[capabilities]
ipc_publish = ["identity.v1.request.build", "prompt_builder.v1.assemble", "agent.v1.stream.delta",
               "agent.v1.response", "tool.v1.request.execute", "tool.v1.request.cancel",
               "llm.v1.request.generate.*", "session.v1.request.get_messages", "session.v1.request.clear"]
ipc_subscribe = ["session.v1.response.get_messages.*", "session.v1.response.clear.*"]
`

	exampleCLI = `[package]
name = "astrid-capsule-cli"
version = "0.1.0"

[[component]]
id = "main"
file = "astrid_capsule_cli.wasm"

[capabilities]
uplink = true
net_bind = ["unix:*"]
ipc_publish = ["user.v1.prompt", "client.v1.disconnect", "cli.v1.command.execute",
               "astrid.v1.request.*", "astrid.v1.elicit.response.*", "astrid.v1.approval.response.*",
               "registry.v1.get_providers", "registry.v1.set_active_model", "registry.v1.selection.*",
               "session.v1.request.*"]
ipc_subscribe = ["agent.v1.response", "agent.v1.stream.delta", "astrid.v1.approval",
                 "astrid.v1.capsules_loaded", "astrid.v1.elicit.*", "astrid.v1.onboarding.required",
                 "astrid.v1.response.*", "registry.v1.response.*", "registry.v1.active_model_changed",
                 "registry.v1.selection.*", "session.v1.response.*"]
`

	exampleAnthropic = `[package]
name = "astrid-capsule-anthropic"
version = "0.1.0"
[[component]]
id = "anthropic"
file = "astrid_capsule_anthropic.wasm"
capabilities = { net = ["api.anthropic.com"] }
[capabilities]
ipc_publish = ["llm.v1.stream.anthropic"]
[env]
anthropic_api_key = { type = "secret", request = "Please enter your Anthropic API Key" }
[[llm_provider]]
id = "claude-3-5-sonnet-20241022"
capabilities = ["text", "vision", "tools"]
[[interceptor]]
event = "llm.v1.request.generate.anthropic"
action = "handle_llm_request"
`

	exampleShell = `[package]
name = "astrid-capsule-shell"
version = "0.1.0"
[[component]]
file = "astrid_capsule_shell.wasm"
[capabilities]
host_process = ["bash", "sh", "zsh"]
ipc_publish = []
[[tool]]
name = "run_shell_command"
description = "Execute a bash command in the active worktree sandbox."
input_schema = { type = "object", properties = { command = { type = "string" } }, required = ["command"] }
`

	exampleAdversarial = `[package]
name = "astrid-capsule-adversarial"
version = "0.0.0"
astrid-version = ">=0.1.0"
[[component]]
id = "adversarial"
file = "astrid_capsule_adversarial.wasm"
type = "executable"
[publish]
"cli.v1.command.result.*" = { wit = "opaque" }
[subscribe]
"cli.v1.command.run.astrid-capsule-adversarial" = { wit = "opaque" }
[capabilities]
uplink = true
fs_read = ["home://adversarial-lifecycle-home-mounted"]
fs_write = ["home://adversarial-lifecycle-home-mounted"]
[env.adversarial_lifecycle_probe]
type = "text"
request = "Enter the runtime E2E lifecycle probe value"
default = "runtime-lifecycle-default"
[[command]]
name = "adversarial"
kind = "cli"
description = "Run runtime E2E adversarial capsule probes"
`
)

func mustParse(t *testing.T, doc string) (*Manifest, []Problem) {
	t.Helper()
	m, warns, err := Parse("Capsule.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if m == nil || m.ID() == "" {
		t.Fatalf("Parse returned manifest %+v", m)
	}
	return m, warns
}

func TestParseUpstreamExamples(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		warns []want
		check func(t *testing.T, m *Manifest)
	}{
		{"react", exampleReact, []want{{"dependencies", 23, "[dependencies] was removed in upstream v0.5"}}, func(t *testing.T, m *Manifest) {
			want := []Interceptor{
				{"user.v1.prompt", "handle_user_prompt", 100},
				{"llm.v1.stream.*", "handle_llm_stream", 100},
				{"astrid.v1.watchdog.tick", "handle_watchdog_tick", 10},
			}
			if !reflect.DeepEqual(m.Interceptors, want) {
				t.Errorf("Interceptors = %+v, want %+v", m.Interceptors, want)
			}
			if len(m.Capabilities.IPCPublish) != 9 || len(m.Capabilities.IPCSubscribe) != 2 {
				t.Errorf("ipc lists = %v / %v", m.Capabilities.IPCPublish, m.Capabilities.IPCSubscribe)
			}
			if m.Package.AstridVersion != ">=0.1.0" || m.Package.Description == "" {
				t.Errorf("Package = %+v", m.Package)
			}
			if c := m.Components[0]; c.ID != "react" || c.Type != "executable" {
				t.Errorf("Components[0] = %+v", c)
			}
		}},
		{"cli uplink", exampleCLI, nil, func(t *testing.T, m *Manifest) {
			c := m.Capabilities
			if !c.Uplink || !reflect.DeepEqual(c.NetBind, []string{"unix:*"}) || len(c.IPCPublish) != 10 || len(c.IPCSubscribe) != 11 {
				t.Errorf("Capabilities = %+v", c)
			}
		}},
		{"anthropic", exampleAnthropic, []want{{"llm_provider", 12, "[[llm_provider]] was removed in upstream v0.5"}}, func(t *testing.T, m *Manifest) {
			if !reflect.DeepEqual(m.Capabilities.Net, []string{"api.anthropic.com"}) {
				t.Errorf("merged Net = %v", m.Capabilities.Net)
			}
			if !reflect.DeepEqual(m.Components[0].Capabilities.Net, []string{"api.anthropic.com"}) {
				t.Errorf("component Net = %v", m.Components[0].Capabilities.Net)
			}
			want := map[string]EnvDef{"anthropic_api_key": {Type: "secret", Request: "Please enter your Anthropic API Key"}}
			if !reflect.DeepEqual(m.Env, want) {
				t.Errorf("Env = %+v, want %+v", m.Env, want)
			}
		}},
		{"shell", exampleShell, []want{{"tool", 9, "[[tool]] was removed in upstream v0.5"}}, func(t *testing.T, m *Manifest) {
			if !reflect.DeepEqual(m.Capabilities.HostProcess, []string{"bash", "sh", "zsh"}) {
				t.Errorf("HostProcess = %v", m.Capabilities.HostProcess)
			}
			if m.Capabilities.IPCPublish == nil || len(m.Capabilities.IPCPublish) != 0 {
				t.Errorf("IPCPublish = %#v, want empty", m.Capabilities.IPCPublish)
			}
		}},
		{"adversarial (newer schema)", exampleAdversarial, []want{
			{"publish", 9, "[publish] belongs to a newer upstream schema"},
			{"subscribe", 11, "[subscribe] belongs to a newer upstream schema"},
			{"command[0].kind", 23, "unknown key; it is ignored"},
		}, func(t *testing.T, m *Manifest) {
			if m.Package.Version != "0.0.0" || !m.Capabilities.Uplink {
				t.Errorf("manifest = %+v", m)
			}
			if e := m.Env["adversarial_lifecycle_probe"]; e.Type != "text" || e.Default != "runtime-lifecycle-default" {
				t.Errorf("Env = %+v", m.Env)
			}
			if want := []Command{{Name: "adversarial", Description: "Run runtime E2E adversarial capsule probes"}}; !reflect.DeepEqual(m.Commands, want) {
				t.Errorf("Commands = %+v", m.Commands)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, warns := mustParse(t, tt.doc)
			checkProblems(t, "warnings", warns, tt.warns)
			tt.check(t, m)
		})
	}
}

func TestParseDefaults(t *testing.T) {
	m, warns := mustParse(t, base)
	if len(warns) != 0 {
		t.Errorf("warnings = %v", warns)
	}
	wantLimits := Limits{Memory: 64 << 20, CallTimeout: 300 * time.Second, IPCBytesPerSec: 10 << 20, MaxProcesses: 8, ProcessMemory: 2 << 30, CompileTimeout: 60 * time.Second, KVBytes: 64 << 20}
	if m.Limits != wantLimits {
		t.Errorf("Limits = %+v, want %+v", m.Limits, wantLimits)
	}
	wantRestart := Restart{Policy: RestartOnFailure, MaxAttempts: 5, Backoff: 2 * time.Second, MaxBackoff: 120 * time.Second}
	if m.Restart != wantRestart {
		t.Errorf("Restart = %+v, want %+v", m.Restart, wantRestart)
	}
	if c := m.Components[0]; c.Type != "executable" || c.File != "demo.wasm" {
		t.Errorf("Components[0] = %+v", c)
	}
	if !filepath.IsAbs(m.Path) || filepath.Base(m.Path) != "Capsule.toml" || m.Dir != filepath.Dir(m.Path) {
		t.Errorf("Path = %q, Dir = %q", m.Path, m.Dir)
	}
	if got, want := m.WasmPath(), filepath.Join(m.Dir, "demo.wasm"); got != want {
		t.Errorf("WasmPath() = %q, want %q", got, want)
	}
	if m.ID() != "demo" {
		t.Errorf("ID() = %q", m.ID())
	}
	if !reflect.DeepEqual(m.Capabilities, Capabilities{}) {
		t.Errorf("Capabilities = %+v, want none", m.Capabilities)
	}
}

func TestParsePathResolvesDir(t *testing.T) {
	m, _, err := Parse("/caps/demo/Capsule.toml", []byte(base+"entrypoint_note = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != "/caps/demo/Capsule.toml" || m.Dir != "/caps/demo" || m.WasmPath() != "/caps/demo/demo.wasm" {
		t.Errorf("Path %q Dir %q WasmPath %q", m.Path, m.Dir, m.WasmPath())
	}
	m, _, err = Parse("", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != "" || m.Dir != "" {
		t.Errorf("empty path: Path %q Dir %q", m.Path, m.Dir)
	}
}

func TestParseLimitsAndRestart(t *testing.T) {
	tests := []struct {
		name    string
		section string
		limits  Limits
		restart Restart
	}{
		{"strings", `[limits]
memory = "128MiB"
call_timeout = "2s"
compile_timeout = "500ms"
fuel = 1000000
ipc_bytes_per_sec = "1MB"
max_processes = 0
process_memory = "16MiB"
kv_bytes = "1KiB"
[restart]
policy = "never"
max_attempts = 0
backoff = "100ms"
max_backoff = "1s"
`, Limits{128 << 20, 2 * time.Second, 1000000, 1000000, 0, 16 << 20, 500 * time.Millisecond, 1 << 10}, Restart{RestartNever, 0, 100 * time.Millisecond, time.Second}},
		{"integers and bounds", `[limits]
memory = 1048576
call_timeout = "24h"
compile_timeout = "1h"
ipc_bytes_per_sec = 1
max_processes = 1024
process_memory = "1024GiB"
kv_bytes = 0
[restart]
policy = "always"
backoff = "1ms"
`, Limits{1 << 20, 24 * time.Hour, 0, 1, 1024, 1 << 40, time.Hour, 0}, Restart{RestartAlways, 5, time.Millisecond, 120 * time.Second}},
		{"4GiB and explicit defaults", `[limits]
memory = "4GiB"
kv_bytes = "16GiB"
[restart]
policy = "on-failure"
backoff = "5m"
max_backoff = "5m"
`, Limits{4 << 30, 300 * time.Second, 0, 10 << 20, 8, 2 << 30, time.Minute, 16 << 30}, Restart{RestartOnFailure, 5, 5 * time.Minute, 5 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, warns := mustParse(t, base+tt.section)
			if len(warns) != 0 {
				t.Errorf("warnings = %v", warns)
			}
			if m.Limits != tt.limits {
				t.Errorf("Limits = %+v, want %+v", m.Limits, tt.limits)
			}
			if m.Restart != tt.restart {
				t.Errorf("Restart = %+v, want %+v", m.Restart, tt.restart)
			}
		})
	}
}

func TestParseFullManifest(t *testing.T) {
	doc := `[package]
name = "full"
version = "1.2.3-beta.1+build.5"
authors = ["A <a@example.com>"]
license-file = "LICENSE"
keywords = ["x", "y"]
publish = false
include = ["*.wasm"]
[package.metadata]
anything = { goes = [1, 2] }

[[component]]
entrypoint = "bin/full.wasm"
link = ["lib"]
hash = "abc"

[capabilities]
process_network = true
allow_prompt_injection = true
identity = ["resolve"]
kv = ["cache"]

[imports.astrid]
session = "^1.0"
registry = { version = ">=0.2, <0.4", optional = true }

[exports.astrid]
memory = "1.0.0"
llm = { version = "2.0.0" }

[[topic]]
name = "full.v1.event"
direction = "publish"
schema = "schemas/event.json"
[[topic]]
name = "full.v1.event"
direction = "subscribe"

[[context_file]]
name = "ctx"
file = "ctx.md"
[[skill]]
name = "s"
file = "skills/s.md"
[[mcp_server]]
id = "gh"
type = "stdio"
command = "gh-mcp"
args = ["--stdio"]
[[uplink]]
name = "tg"
platform = "telegram"
profile = "chat"
`
	m, warns := mustParse(t, doc)
	if len(warns) != 0 {
		t.Errorf("warnings = %v", warns)
	}
	no := false
	if m.Package.Publish == nil || *m.Package.Publish != no || m.Package.LicenseFile != "LICENSE" || m.Package.Metadata["anything"] == nil {
		t.Errorf("Package = %+v", m.Package)
	}
	if c := m.Components[0]; c.File != "bin/full.wasm" || c.Hash != "abc" || !reflect.DeepEqual(c.Link, []string{"lib"}) {
		t.Errorf("Components[0] = %+v", c)
	}
	if !strings.HasSuffix(m.WasmPath(), filepath.FromSlash("/bin/full.wasm")) {
		t.Errorf("WasmPath() = %q", m.WasmPath())
	}
	if c := m.Capabilities; !c.ProcessNetwork || !c.AllowPromptInjection || c.Identity[0] != "resolve" || c.KV[0] != "cache" {
		t.Errorf("Capabilities = %+v", c)
	}
	wantImports := map[string]map[string]ImportDef{"astrid": {
		"session":  {Version: "^1.0"},
		"registry": {Version: ">=0.2, <0.4", Optional: true},
	}}
	if !reflect.DeepEqual(m.Imports, wantImports) {
		t.Errorf("Imports = %+v", m.Imports)
	}
	wantExports := map[string]map[string]ExportDef{"astrid": {"memory": {"1.0.0"}, "llm": {"2.0.0"}}}
	if !reflect.DeepEqual(m.Exports, wantExports) {
		t.Errorf("Exports = %+v", m.Exports)
	}
	if len(m.Topics) != 2 || m.Topics[0].Schema != "schemas/event.json" {
		t.Errorf("Topics = %+v", m.Topics)
	}
	if !reflect.DeepEqual(m.ContextFiles, []ContextFile{{"ctx", "ctx.md"}}) ||
		!reflect.DeepEqual(m.Skills, []Skill{{Name: "s", File: "skills/s.md"}}) ||
		!reflect.DeepEqual(m.MCPServers, []MCPServer{{ID: "gh", Type: "stdio", Command: "gh-mcp", Args: []string{"--stdio"}}}) ||
		!reflect.DeepEqual(m.Uplinks, []Uplink{{"tg", "telegram", "chat"}}) {
		t.Errorf("static sections: %+v %+v %+v %+v", m.ContextFiles, m.Skills, m.MCPServers, m.Uplinks)
	}
}

func TestMergeComponentCapabilities(t *testing.T) {
	doc := `[package]
name = "merge"
version = "0.1.0"

[capabilities]
net = ["root.example"]
fs_read = ["cwd://"]
ipc_publish = ["merge.v1.out"]

[[component]]
file = "a.wasm"
[component.capabilities]
net = ["a.example"]
fs_read = ["home://"]
fs_write = ["cwd://"]
host_process = ["git"]
net_bind = ["unix:*"]
ipc_publish = ["a.v1.out"]
uplink = true

[[component]]
file = "b.wasm"
capabilities = { net = ["b.example"], host_process = ["ls"], process_network = true }
`
	m, warns := mustParse(t, doc)
	wantCaps := Capabilities{
		Net:         []string{"root.example", "a.example", "b.example"},
		FSRead:      []string{"cwd://", "home://"},
		FSWrite:     []string{"cwd://"},
		HostProcess: []string{"git", "ls"},
		NetBind:     []string{"unix:*"},
		IPCPublish:  []string{"merge.v1.out"},
	}
	if !reflect.DeepEqual(m.Capabilities, wantCaps) {
		t.Errorf("merged Capabilities =\n%+v, want\n%+v", m.Capabilities, wantCaps)
	}
	if !m.Components[0].Capabilities.Uplink || m.Components[0].Capabilities.IPCPublish[0] != "a.v1.out" {
		t.Errorf("component capabilities lost: %+v", m.Components[0].Capabilities)
	}
	checkProblems(t, "warnings", warns, []want{
		{"component[0].capabilities.ipc_publish", 18, "this entry is ignored: declare it in the top-level [capabilities]"},
		{"component[0].capabilities.uplink", 19, "only fs_read, fs_write, host_process, net and net_bind are merged"},
		{"component[1]", 21, "only the first [[component]] is loaded"},
		{"component[1].capabilities.process_network", 23, "only fs_read, fs_write, host_process, net and net_bind are merged"},
	})
}

func TestParseWarnings(t *testing.T) {
	doc := `title = "x"
[package]
name = "warn"
version = "0.1.0"
astrid_version = ">=0.5"
[package.metadata]
free = "form"

[[component]]
file = "w.wasm"
capabilities.ipc_publish = ["a..b"]
bogus = 1

[capabilities]
ipc_publsh = ["x"]
net_connect = ["host:1"]
"weird key" = { nested = true }

[env.KEY]
type = "secret"
defualt = "x"

[[interceptor]]
event = "a.b"
action = "h"
prio = 1

[limits]
memroy = "1MiB"

[imports.astrid]
session = { version = "^1", optoinal = true }

[restart]
jitter = "1s"
`
	m, warns := mustParse(t, doc)
	if m.Limits.Memory != DefaultMemory {
		t.Errorf("Memory = %d, want the default", m.Limits.Memory)
	}
	checkProblems(t, "warnings", warns, []want{
		{"title", 1, "unknown key; it is ignored"},
		{"package.astrid_version", 5, `unknown key; it is ignored (did you mean "astrid-version"?)`},
		{"component[0].capabilities.ipc_publish", 11, "merged"},
		{"component[0].bogus", 12, "unknown key; it is ignored"},
		{"capabilities.ipc_publsh", 15, `(did you mean "ipc_publish"?)`},
		{"capabilities.net_connect", 16, "a capability of a newer upstream version"},
		{`capabilities."weird key"`, 17, "unknown key; it is ignored"},
		{"env.KEY.defualt", 21, `(did you mean "default"?)`},
		{"interceptor[0].prio", 26, "unknown key; it is ignored"},
		{"limits.memroy", 29, `(did you mean "memory"?)`},
		{"imports.astrid.session.optoinal", 32, `(did you mean "optional"?)`},
		{"restart.jitter", 35, "unknown key; it is ignored"},
	})
}

func TestWarningsReturnedWithErrors(t *testing.T) {
	_, warns, err := Parse("Capsule.toml", []byte(base+"mystery = 1\n[limits]\nmemory = 1\n"))
	if err == nil {
		t.Fatal("no error")
	}
	checkProblems(t, "warnings", warns, []want{{"component[0].mystery", 7, "unknown key"}})
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{"a/Capsule.toml", 7, "package.version", "bad"}, "a/Capsule.toml:7: package.version: bad"},
		{Problem{"a/Capsule.toml", 0, "package", "missing"}, "a/Capsule.toml: package: missing"},
		{Problem{"a/Capsule.toml", 3, "", "syntax"}, "a/Capsule.toml:3: syntax"},
		{Problem{"", 3, "k", "m"}, "line 3: k: m"},
		{Problem{"", 0, "", "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	errs := Errors{tests[0].p, tests[1].p}
	if got, want := errs.Error(), "a/Capsule.toml:7: package.version: bad\na/Capsule.toml: package: missing"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
