package manifest

import (
	"errors"
	"strings"
	"testing"
)

// base is a valid manifest of six lines: sections appended to it start on
// line 7.
const base = `[package]
name = "demo"
version = "0.1.0"

[[component]]
file = "demo.wasm"
`

// want describes one expected problem: its key, its line and a distinctive
// part of its message.
type want struct {
	key  string
	line int
	msg  string
}

// checkProblems compares problems with the expected ones, in order.
func checkProblems(t *testing.T, kind string, got []Problem, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		var b strings.Builder
		for _, p := range got {
			b.WriteString("\n\t" + p.String())
		}
		t.Fatalf("got %d %s, want %d:%s", len(got), kind, len(wants), b.String())
	}
	for i, w := range wants {
		p := got[i]
		if p.File != "Capsule.toml" || p.Key != w.key || p.Line != w.line || !strings.Contains(p.Message, w.msg) {
			t.Errorf("%s[%d] = %s\n\twant Capsule.toml:%d: %s: ...%s...", kind, i, p, w.line, w.key, w.msg)
		}
	}
}

const emptySegments = "contains empty segments (consecutive dots, leading/trailing dots, or is empty)"

var errorTests = []struct {
	name string
	doc  string
	errs []want
}{
	// TOML itself.
	{"syntax error", "[package\nname = \"x\"\n", []want{{"", 1, "invalid TOML at column"}}},
	{"syntax error later", base + "[limits]\nmemory = \n", []want{{"", 8, "invalid TOML at column 10"}}},
	{"too large", base + "# " + strings.Repeat("x", 1<<20) + "\n", []want{{"", 0, "bytes; a Capsule.toml may be at most 1MiB"}}},
	{"duplicate key", "[package]\nname = \"a\"\nname = \"b\"\n", []want{{"", 3, "invalid TOML at column 1: key name is already defined"}}},

	// [package].
	{"no package", "[[component]]\nfile = \"a.wasm\"\n", []want{{"package", 0, "required: a [package] section"}}},
	{"package not a table", "package = 1\n[[component]]\nfile = \"a.wasm\"\n", []want{{"package", 1, "must be a table, got integer"}}},
	{"missing name", "[package]\nversion = \"0.1.0\"\n[[component]]\nfile = \"a.wasm\"\n",
		[]want{{"package.name", 1, `required: the capsule id, e.g. name = "my-capsule"`}}},
	{"bad name", strings.Replace(base, `"demo"`, `"My_Capsule"`, 1),
		[]want{{"package.name", 2, `"My_Capsule" is not a valid capsule id: capsule id must contain only lowercase alphanumeric characters and hyphens`}}},
	{"empty name", strings.Replace(base, `"demo"`, `""`, 1),
		[]want{{"package.name", 2, "capsule id must contain only lowercase alphanumeric characters and hyphens"}}},
	{"name not a string", strings.Replace(base, `"demo"`, `5`, 1), []want{{"package.name", 2, "must be a string, got integer"}}},
	{"missing version", "[package]\nname = \"a\"\n[[component]]\nfile = \"a.wasm\"\n",
		[]want{{"package.version", 1, "required: the capsule version as strict semver MAJOR.MINOR.PATCH"}}},
	{"short version", strings.Replace(base, `"0.1.0"`, `"1.0"`, 1), []want{{"package.version", 3, `"1.0" is not a valid version: want strict semver MAJOR.MINOR.PATCH`}}},
	{"v-prefixed version", strings.Replace(base, `"0.1.0"`, `"v1.0.0"`, 1), []want{{"package.version", 3, "strict semver"}}},
	{"astrid-version not satisfied", strings.Replace(base, "version = \"0.1.0\"\n", "version = \"0.1.0\"\nastrid-version = \">=0.6.0\"\n", 1),
		[]want{{"package.astrid-version", 4, "capsule requires astrid-version >=0.6.0, but this runtime is 0.5.1"}}},
	{"astrid-version caret not satisfied", strings.Replace(base, "version = \"0.1.0\"\n", "version = \"0.1.0\"\nastrid-version = \"^0.4\"\n", 1),
		[]want{{"package.astrid-version", 4, "capsule requires astrid-version ^0.4, but this runtime is 0.5.1"}}},
	{"astrid-version invalid", strings.Replace(base, "version = \"0.1.0\"\n", "version = \"0.1.0\"\nastrid-version = \"soon\"\n", 1),
		[]want{{"package.astrid-version", 4, `"soon" is not a valid version requirement`}}},
	{"empty metadata is valid", base + "[package.metadata]\n", nil},
	{"package lists mistyped", "[package]\nname = \"a\"\nversion = \"0.1.0\"\nauthors = \"me\"\nkeywords = [\"a\", 2]\npublish = \"yes\"\nmetadata = 3\n[[component]]\nfile = \"a.wasm\"\n",
		[]want{
			{"package.authors", 4, `must be an array of strings such as ["a", "b"], got string`},
			{"package.keywords[1]", 5, "must be a string, got integer"},
			{"package.publish", 6, "must be a boolean (true or false), got string"},
			{"package.metadata", 7, "must be a table ([package.metadata]) of free-form values, got integer"},
		}},

	{"value types", "[package]\nname = 1979-05-27T07:32:00Z\nversion = 1979-05-27T07:32:00\ndescription = 1.5\nreadme = [\"x\"]\nlicense = { a = 1 }\n[[component]]\nfile = \"a.wasm\"\n",
		[]want{
			{"package.name", 2, "must be a string, got date-time"},
			{"package.version", 3, "must be a string, got local date-time"},
			{"package.description", 4, "must be a string, got float"},
			{"package.readme", 5, "must be a string, got array"},
			{"package.license", 6, "must be a string, got table"},
		}},

	// [[component]].
	{"no component", "[package]\nname = \"a\"\nversion = \"0.1.0\"\n", []want{{"component", 0, "required: at least one [[component]]"}}},
	{"empty component array", "component = []\n[package]\nname = \"a\"\nversion = \"0.1.0\"\n", []want{{"component", 1, "required: at least one [[component]]"}}},
	{"component as a single table", "[package]\nname = \"a\"\nversion = \"0.1.0\"\n[component]\nfile = \"a.wasm\"\n",
		[]want{{"component", 4, "must be an array of tables: write [[component]] (double brackets), not [component]"}}},
	{"component element not a table", "component = [\"a.wasm\"]\n[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
		[]want{{"component[0]", 1, "must be a table, got string"}}},
	{"component without file", "[package]\nname = \"a\"\nversion = \"0.1.0\"\n\n[[component]]\nid = \"main\"\n",
		[]want{{"component[0].file", 5, "required: the path of the capsule's .wasm file"}}},
	{"absolute file", strings.Replace(base, `"demo.wasm"`, `"/opt/demo.wasm"`, 1),
		[]want{{"component[0].file", 6, `"/opt/demo.wasm" is not inside the capsule directory`}}},
	{"dotdot file", strings.Replace(base, `"demo.wasm"`, `"../demo.wasm"`, 1), []want{{"component[0].file", 6, "is not inside the capsule directory"}}},
	{"dotdot escaping file", strings.Replace(base, `"demo.wasm"`, `"a/../../demo.wasm"`, 1), []want{{"component[0].file", 6, "is not inside the capsule directory"}}},
	{"directory as file", strings.Replace(base, `"demo.wasm"`, `"a/.."`, 1), []want{{"component[0].file", 6, "is the capsule directory itself"}}},
	{"empty file", strings.Replace(base, `"demo.wasm"`, `""`, 1), []want{{"component[0].file", 6, "must not be empty"}}},
	{"NUL in file", strings.Replace(base, `"demo.wasm"`, `"a\u0000.wasm"`, 1), []want{{"component[0].file", 6, "NUL byte"}}},
	{"bad entrypoint", strings.Replace(base, `file = "demo.wasm"`, `entrypoint = "/x.wasm"`, 1), []want{{"component[0].entrypoint", 6, "is not inside the capsule directory"}}},
	{"file and entrypoint", base + "entrypoint = \"demo.wasm\"\n", []want{{"component[0].entrypoint", 7, "entrypoint is another name for file: set only one of them"}}},
	{"file not a string", strings.Replace(base, `"demo.wasm"`, `true`, 1), []want{{"component[0].file", 6, "must be a string, got boolean"}}},
	{"component type", base + "type = \"plugin\"\n", []want{{"component[0].type", 7, `"plugin" is not a component type; want "executable" (the default) or "library"`}}},
	{"second component", base + "\n[[component]]\nid = \"lib\"\nfile = \"../lib.wasm\"\n", []want{{"component[1].file", 10, "is not inside the capsule directory"}}},
	{"inline component array", "component = [\n  { file = \"ok.wasm\" },\n  { file = \"/abs.wasm\" },\n]\n[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
		[]want{{"component[1].file", 3, "is not inside the capsule directory"}}},

	// [capabilities] and upstream rule 4.
	{"ipc_publish segments", base + "[capabilities]\nipc_publish = [\n  \"ok.topic\",\n  \"a..b\",\n  \".a\", \"a.\",\n  \"\",\n]\n",
		[]want{
			{"capabilities.ipc_publish[1]", 10, `ipc_publish pattern "a..b" ` + emptySegments},
			{"capabilities.ipc_publish[2]", 11, `ipc_publish pattern ".a" ` + emptySegments},
			{"capabilities.ipc_publish[3]", 11, `ipc_publish pattern "a." ` + emptySegments},
			{"capabilities.ipc_publish[4]", 12, `ipc_publish pattern "" ` + emptySegments},
		}},
	{"ipc_subscribe segments", base + "[capabilities]\nipc_subscribe = [\"a.*\", \"*..x\"]\n",
		[]want{{"capabilities.ipc_subscribe[1]", 8, `ipc_subscribe pattern "*..x" ` + emptySegments}}},
	{"pattern list with a non-string", base + "[capabilities]\nipc_publish = [1, \"a..b\"]\n",
		[]want{
			{"capabilities.ipc_publish[0]", 8, "must be a string, got integer"},
			{"capabilities.ipc_publish[1]", 8, emptySegments},
		}},
	{"pattern too long", base + "[capabilities]\nipc_publish = [\"" + strings.Repeat("a", 257) + "\"]\n",
		[]want{{"capabilities.ipc_publish[0]", 8, "is 257 bytes long; topics are limited to 256 bytes"}}},
	{"root dotted capability key", "capabilities.ipc_publish = [\"x\", \"a..b\"]\n" + base,
		[]want{{"capabilities.ipc_publish[1]", 1, emptySegments}}},
	{"capability types", base + "[capabilities]\nnet = \"example.com\"\nfs_read = [1]\nuplink = \"yes\"\n",
		[]want{
			{"capabilities.net", 8, "must be an array of strings"},
			{"capabilities.fs_read[0]", 9, "must be a string, got integer"},
			{"capabilities.uplink", 10, "must be a boolean (true or false), got string"},
		}},
	{"capabilities not a table", base + "capabilities = [\"net\"]\n", []want{{"component[0].capabilities", 7, "must be a table, got array"}}},

	// [[interceptor]].
	{"interceptor event", base + "[[interceptor]]\nevent = \"llm..stream\"\naction = \"handle\"\n",
		[]want{{"interceptor[0].event", 8, `interceptor event "llm..stream" ` + emptySegments}}},
	{"interceptor empty event", base + "[[interceptor]]\nevent = \"\"\naction = \"handle\"\n",
		[]want{{"interceptor[0].event", 8, `interceptor event "" ` + emptySegments}}},
	{"interceptor missing fields", base + "[[interceptor]]\nevent = \"a.b\"\naction = \"h\"\n[[interceptor]]\npriority = 1\n",
		[]want{
			{"interceptor[1].event", 10, "required: the topic pattern to intercept"},
			{"interceptor[1].action", 10, "required: the guest function that handles the event"},
		}},
	{"interceptor priority", base + "[[interceptor]]\nevent = \"a.b\"\naction = \"h\"\npriority = -1\n",
		[]want{{"interceptor[0].priority", 10, "-1 is out of range: priority must be between 0 and 4294967295"}}},
	{"interceptor priority type", base + "[[interceptor]]\nevent = \"a.b\"\naction = \"h\"\npriority = \"high\"\n",
		[]want{{"interceptor[0].priority", 10, "must be an integer, got string"}}},

	{"interceptor action type", base + "[[interceptor]]\nevent = \"a.b\"\naction = 1\n",
		[]want{{"interceptor[0].action", 9, "must be a string, got integer: the guest function that handles the event"}}},

	// [[topic]] (upstream rule 7).
	{"topic rules", base + `[[topic]]
name = "llm.v1.stream.*"
direction = "publish"
[[topic]]
name = "a..b"
direction = "publish"
[[topic]]
name = "user/prompt"
direction = "subscribe"
[[topic]]
name = "ok.topic"
direction = "both"
schema = "../schema.json"
[[topic]]
name = "ok.topic"
direction = "publish"
schema = "/etc/schema.json"
[[topic]]
name = "ok.topic"
direction = "publish"
[[topic]]
name = "ok.topic"
`,
		[]want{
			{"topic[0].name", 8, "contains a wildcard"},
			{"topic[1].name", 11, `topic name "a..b" ` + emptySegments},
			{"topic[2].name", 14, `topic name "user/prompt" contains '/': only ASCII letters, digits, '-', '_' and '.' are allowed`},
			{"topic[3].direction", 18, `"both" is not a direction; want "publish" or "subscribe"`},
			{"topic[3].schema", 19, `"../schema.json" is not a valid schema path`},
			{"topic[4].schema", 23, `"/etc/schema.json" is not a valid schema path`},
			{"topic[5].name", 25, `duplicate [[topic]]: "ok.topic" with direction "publish" is already declared by topic[4] (line 20)`},
			{"topic[6].direction", 27, "required: \"publish\" or \"subscribe\""},
		}},

	// [imports] and [exports] (upstream rules 5 and 6).
	{"imports and exports", base + `[imports.Astrid]
session = "^1.0"
[imports.astrid]
1session = "^1.0"
registry = "not a version"
llm = { optional = true }
kv = 3
tools = ""
[exports.astrid]
session = "1.0"
memory = { version = "x" }
ok = { version = "1.2.3" }
`,
		[]want{
			{"imports.Astrid", 7, `namespace name "Astrid" is invalid: it must start with a lowercase letter`},
			{"imports.astrid.1session", 10, `interface name "1session" is invalid`},
			{"imports.astrid.registry", 11, `"not a version" is not a valid version requirement`},
			{"imports.astrid.llm.version", 12, `required: the version requirement`},
			{"imports.astrid.kv", 13, `must be a version requirement such as "^1.0" or a table`},
			{"imports.astrid.tools", 14, "must not be empty"},
			{"exports.astrid.session", 16, `"1.0" is not a valid version: an export needs an exact strict semver version`},
			{"exports.astrid.memory.version", 17, `"x" is not a valid version`},
		}},
	{"exports namespace not a table", base + "[exports]\nastrid = \"1.0.0\"\n",
		[]want{{"exports.astrid", 8, `must be a table of interfaces, e.g. [exports.astrid] then session = "1.0.0", got string`}}},
	{"uplink with imports", base + "[capabilities]\nuplink = true\n\n[imports.astrid]\nsession = \"^1.0\"\n",
		[]want{{"imports", 10, "a capsule with capabilities.uplink = true cannot have [imports]"}}},

	// [env].
	{"env", base + "[env]\ntoken = \"secret\"\n[env.key]\nrequest = \"Your key?\"\n[env.mode]\ntype = \"string\"\nenum_values = \"a\"\n",
		[]want{
			{"env.token", 8, `must be a table such as { type = "string", request = "..." }, got string`},
			{"env.key.type", 9, "required: the kind of value"},
			{"env.mode.enum_values", 13, "must be an array of strings"},
		}},

	// Static sections.
	{"static sections", base + `[[context_file]]
name = "style"
file = "../style.md"
[[command]]
file = "cmd.md"
[[skill]]
name = "sum"
[[mcp_server]]
type = "stdio"
[[uplink]]
name = "tg"
platform = "telegram"
profile = "group"
`,
		[]want{
			{"context_file[0].file", 9, `"../style.md" is not inside the capsule directory`},
			{"command[0].name", 10, "required: the command name"},
			{"skill[0].file", 12, "required: the path of the skill file"},
			{"mcp_server[0].id", 14, "required: the server id"},
			{"uplink[0].profile", 19, `"group" is not an uplink profile`},
		}},

	// [limits].
	{"limits types", base + "[limits]\nmemory = true\ncall_timeout = 30\nfuel = \"lots\"\nipc_bytes_per_sec = 1.5\nmax_processes = \"8\"\n",
		[]want{
			{"limits.memory", 8, "must be a size: an integer number of bytes or a string of digits with an optional unit B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024)"},
			{"limits.call_timeout", 9, `must be a duration string such as "30s", "100ms" or "2m", got integer`},
			{"limits.fuel", 10, "must be an integer, got string"},
			{"limits.ipc_bytes_per_sec", 11, "must be a size: an integer number of bytes or a string"},
			{"limits.max_processes", 12, "must be an integer, got string"},
		}},
	{"limits ranges", base + "[limits]\nmemory = \"512KiB\"\ncall_timeout = \"0s\"\nfuel = 0\nipc_bytes_per_sec = 0\nmax_processes = 2000\n",
		[]want{
			{"limits.memory", 8, "512KiB is out of range: memory must be at least 1MiB and at most 4GiB"},
			{"limits.call_timeout", 9, "0s is out of range: call_timeout must be more than 0 and at most 24h"},
			{"limits.fuel", 10, "must be a positive integer, got 0 (remove the key to turn fuel metering off)"},
			{"limits.ipc_bytes_per_sec", 11, "must be more than 0 bytes"},
			{"limits.max_processes", 12, "2000 is out of range: max_processes must be between 0 and 1024"},
		}},
	{"limits upper bounds", base + "[limits]\nmemory = \"5GiB\"\ncall_timeout = \"25h\"\nmax_processes = -1\n",
		[]want{
			{"limits.memory", 8, "5GiB is out of range"},
			{"limits.call_timeout", 9, "25h0m0s is out of range"},
			{"limits.max_processes", 10, "-1 is out of range"},
		}},
	{"limits bad strings", base + "[limits]\nmemory = \"64XB\"\ncall_timeout = \"2 seconds\"\nipc_bytes_per_sec = -5\n",
		[]want{
			{"limits.memory", 8, `invalid size "64XB": unknown unit "XB"`},
			{"limits.call_timeout", 9, `invalid duration "2 seconds": want a number with a unit`},
			{"limits.ipc_bytes_per_sec", 10, "must not be negative, got -5"},
		}},
	{"limits compile_timeout", base + "[limits]\ncompile_timeout = \"0s\"\n",
		[]want{{"limits.compile_timeout", 8, "0s is out of range: compile_timeout must be more than 0 and at most 1h (default 1m0s)"}}},
	{"limits compile_timeout too long", base + "[limits]\ncompile_timeout = \"61m\"\n",
		[]want{{"limits.compile_timeout", 8, "1h1m0s is out of range: compile_timeout must be more than 0 and at most 1h"}}},
	{"limits compile_timeout type", base + "[limits]\ncompile_timeout = 60\n",
		[]want{{"limits.compile_timeout", 8, `must be a duration string such as "30s", "100ms" or "2m", got integer`}}},
	{"limits memory in bytes too small", base + "[limits]\nmemory = 1000\n", []want{{"limits.memory", 8, "1000 bytes is out of range"}}},
	{"limits process_memory", base + "[limits]\nprocess_memory = \"8MiB\"\n",
		[]want{{"limits.process_memory", 8, "8MiB is out of range: process_memory must be at least 16MiB and at most 1024GiB (default 2GiB)"}}},
	{"limits process_memory too big", base + "[limits]\nprocess_memory = \"1025GiB\"\n", []want{{"limits.process_memory", 8, "out of range"}}},
	{"limits process_memory type", base + "[limits]\nprocess_memory = true\n", []want{{"limits.process_memory", 8, "must be a size"}}},
	{"limits kv_bytes too big", base + "[limits]\nkv_bytes = \"17GiB\"\n",
		[]want{{"limits.kv_bytes", 8, "17GiB is out of range: kv_bytes must be at most 16GiB (default 64MiB; 0 gives the capsule no KV storage)"}}},
	{"limits kv_bytes negative", base + "[limits]\nkv_bytes = -1\n", []want{{"limits.kv_bytes", 8, "must not be negative, got -1"}}},
	{"limits kv_bytes type", base + "[limits]\nkv_bytes = \"lots\"\n", []want{{"limits.kv_bytes", 8, `invalid size "lots"`}}},
	{"limits not a table", "limits = 5\n" + base, []want{{"limits", 1, "must be a table, got integer"}}},

	// [restart].
	{"restart values", base + "[restart]\npolicy = \"sometimes\"\nmax_attempts = -1\nbackoff = \"500us\"\nmax_backoff = 10\n",
		[]want{
			{"restart.policy", 8, `"sometimes" is not a restart policy; want "on-failure" (the default), "always" or "never"`},
			{"restart.max_attempts", 9, "-1 is out of range: max_attempts must be 0 or more"},
			{"restart.backoff", 10, "500µs is too short: backoff must be at least 1ms"},
			{"restart.max_backoff", 11, "must be a duration string"},
		}},
	{"restart max below backoff", base + "[restart]\nbackoff = \"10s\"\nmax_backoff = \"5s\"\n",
		[]want{{"restart.max_backoff", 9, "5s is less than backoff 10s: max_backoff must be at least backoff"}}},
	{"restart backoff above default max", base + "[restart]\nbackoff = \"5m\"\n",
		[]want{{"restart.backoff", 8, "5m0s is more than the default max_backoff 2m0s: lower it or set max_backoff too"}}},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, err := Parse("Capsule.toml", []byte(tt.doc))
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %d problems", len(tt.errs))
			}
			if m != nil {
				t.Errorf("manifest = %+v, want nil on error", m)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			checkProblems(t, "errors", errs, tt.errs)
		})
	}
}
