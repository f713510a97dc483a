package manifest

import (
	"github.com/astrid-go/astrid/bus/topics"

	"fmt"
	"math"
	"slices"
	"strings"
)

// defaultPriority is the priority of an [[interceptor]] that sets none.
const defaultPriority = 100

// env decodes [env]: one table per variable.
func (d *decoder) env(t *table) map[string]EnvDef {
	out := make(map[string]EnvDef, len(t.m))
	for _, k := range t.keys() {
		et, ok := d.asTable(t.at(k), t.m[k], `a table such as { type = "string", request = "..." }`)
		if !ok {
			continue
		}
		var e EnvDef
		e.Type = et.requiredStr("type", `the kind of value, e.g. type = "secret" or type = "string"`)
		e.Request, _ = et.str("request")
		e.Description, _ = et.str("description")
		e.Default, _ = et.get("default")
		e.EnumValues = et.strList("enum_values")
		e.Placeholder, _ = et.str("placeholder")
		et.done(nil)
		out[k] = e
	}
	return out
}

// interceptors decodes [[interceptor]] (upstream rule 4 for event). subscribeACL is the capsule's
// ipc_subscribe, for the warning about events that span every namespace (see broadEvent).
func (d *decoder) interceptors(ts []*table, subscribeACL []string) []Interceptor {
	var out []Interceptor
	for _, t := range ts {
		ic := Interceptor{Priority: defaultPriority}
		if ev, ok := t.str("event"); ok {
			ic.Event = ev
			if err := topics.CheckSegments(ev); err != nil {
				d.errorf(t.at("event"), "interceptor event %q %v", ev, err)
			} else if broadEvent(ev, subscribeACL) {
				d.warnf(t.at("event"), "interceptor event %q matches topics of every namespace (every capsule's messages and the host's events), "+
					"and [capabilities] ipc_subscribe does not grant it: an [[interceptor]] is a subscription the host makes without the ipc_subscribe check (as upstream); "+
					"name the namespace it handles instead, e.g. event = \"user.v1.prompt\" or \"myapp.v1.*\"", ev)
			}
		} else if !t.has("event") {
			d.errorf(t.at("event"), `required: the topic pattern to intercept, e.g. event = "user.v1.prompt"`)
		}
		ic.Action = t.requiredStr("action", `the guest function that handles the event, e.g. action = "handle_user_prompt"`)
		if n, ok := t.integer("priority"); ok {
			if n < 0 || n > math.MaxUint32 {
				d.errorf(t.at("priority"), "%d is out of range: priority must be between 0 and %d (default %d; lower runs first)", n, uint64(math.MaxUint32), defaultPriority)
			} else {
				ic.Priority = int(n)
			}
		}
		t.done(nil)
		out = append(out, ic)
	}
	return out
}

// broadEvent reports whether an interceptor event spans every namespace (its first segment is
// "*", so "*", "*.*" or "*.v1.*") without an ipc_subscribe entry that covers it. Interceptor
// events are subscribed by the host for the capsule without the subscribe ACL: upstream manifests
// declare them instead of listing them in ipc_subscribe, so the ACL cannot be required of them;
// the manifest itself is the grant, and `check` (and run and call, which log manifest warnings)
// point out the one that grants the whole bus.
func broadEvent(event string, subscribeACL []string) bool {
	first, _, _ := strings.Cut(event, ".")
	if first != "*" {
		return false
	}
	for _, acl := range subscribeACL {
		if topics.Covers(acl, event) {
			return false
		}
	}
	return true
}

// topics decodes [[topic]] (upstream rule 7).
func (d *decoder) topics(ts []*table) []Topic {
	var out []Topic
	first := map[[2]string]*table{}
	for _, t := range ts {
		var tp Topic
		nameOK, dirOK := false, false
		if name, ok := t.str("name"); ok {
			tp.Name = name
			nameOK = d.checkTopicName(t.at("name"), name)
		} else if !t.has("name") {
			d.errorf(t.at("name"), `required: the topic, e.g. name = "llm.v1.stream.anthropic"`)
		}
		tp.Direction = t.requiredStr("direction", `"publish" or "subscribe"`)
		switch tp.Direction {
		case "publish", "subscribe":
			dirOK = true
		case "":
		default:
			d.errorf(t.at("direction"), "%q is not a direction; want \"publish\" or \"subscribe\"", tp.Direction)
		}
		tp.Description, _ = t.str("description")
		if s, ok := t.str("schema"); ok {
			tp.Schema = s
			if strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\`) || strings.Contains(s, "..") || strings.ContainsRune(s, 0) {
				d.errorf(t.at("schema"), "%q is not a valid schema path: it must be relative to the capsule directory and must not contain \"..\", e.g. \"schemas/prompt.json\"", s)
			}
		}
		if nameOK && dirOK {
			k := [2]string{tp.Name, tp.Direction}
			if prev, dup := first[k]; dup {
				d.errorf(t.at("name"), "duplicate [[topic]]: %q with direction %q is already declared by %s (line %d)", tp.Name, tp.Direction, prev.path, d.lines.line(prev.path))
			} else {
				first[k] = t
			}
		}
		t.done(nil)
		out = append(out, tp)
	}
	return out
}

// checkTopicName checks the name of a [[topic]]: valid segments, no
// wildcard, only ASCII letters, digits, '-', '_' and '.'.
func (d *decoder) checkTopicName(p keyPath, name string) bool {
	if err := topics.CheckSegments(name); err != nil {
		d.errorf(p, "topic name %q %v", name, err)
		return false
	}
	if strings.Contains(name, "*") {
		d.errorf(p, "topic name %q contains a wildcard: a [[topic]] declares one concrete topic, so \"*\" is not allowed", name)
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			d.errorf(p, "topic name %q contains %q: only ASCII letters, digits, '-', '_' and '.' are allowed", name, r)
			return false
		}
	}
	return true
}

// imports decodes [imports]: namespace -> interface -> requirement, where
// a requirement is "^1.0" or { version = "^1.0", optional = true }.
func (d *decoder) imports(t *table) map[string]map[string]ImportDef {
	out := make(map[string]map[string]ImportDef, len(t.m))
	for _, ns := range t.keys() {
		d.checkInterfaceName(t.at(ns), ns, "namespace")
		nt, ok := d.asTable(t.at(ns), t.m[ns], fmt.Sprintf(`a table of interfaces, e.g. [imports.%s] then session = "^1.0"`, formatKey(ns)))
		if !ok {
			continue
		}
		ifaces := make(map[string]ImportDef, len(nt.m))
		for _, name := range nt.keys() {
			p := nt.at(name)
			d.checkInterfaceName(p, name, "interface")
			var def ImportDef
			switch v := nt.m[name].(type) {
			case string:
				def.Version = v
				d.checkRequirement(p, v)
			case map[string]any:
				it := d.newTable(p, v)
				if s, ok := it.str("version"); ok {
					def.Version = s
					d.checkRequirement(it.at("version"), s)
				} else if !it.has("version") {
					d.errorf(it.at("version"), `required: the version requirement, e.g. version = "^1.0"`)
				}
				def.Optional = it.boolean("optional")
				it.done(nil)
			default:
				d.errorf(p, `must be a version requirement such as "^1.0" or a table such as { version = "^1.0", optional = true }, got %s`, typeName(v))
			}
			ifaces[name] = def
		}
		out[ns] = ifaces
	}
	return out
}

// exports decodes [exports]: namespace -> interface -> version, where a
// version is "1.0.0" or { version = "1.0.0" }.
func (d *decoder) exports(t *table) map[string]map[string]ExportDef {
	out := make(map[string]map[string]ExportDef, len(t.m))
	for _, ns := range t.keys() {
		d.checkInterfaceName(t.at(ns), ns, "namespace")
		nt, ok := d.asTable(t.at(ns), t.m[ns], fmt.Sprintf(`a table of interfaces, e.g. [exports.%s] then session = "1.0.0"`, formatKey(ns)))
		if !ok {
			continue
		}
		ifaces := make(map[string]ExportDef, len(nt.m))
		for _, name := range nt.keys() {
			p := nt.at(name)
			d.checkInterfaceName(p, name, "interface")
			var def ExportDef
			switch v := nt.m[name].(type) {
			case string:
				def.Version = v
				d.checkExactVersion(p, v)
			case map[string]any:
				et := d.newTable(p, v)
				if s, ok := et.str("version"); ok {
					def.Version = s
					d.checkExactVersion(et.at("version"), s)
				} else if !et.has("version") {
					d.errorf(et.at("version"), `required: the exported version, e.g. version = "1.0.0"`)
				}
				et.done(nil)
			default:
				d.errorf(p, `must be a version such as "1.0.0" or a table such as { version = "1.0.0" }, got %s`, typeName(v))
			}
			ifaces[name] = def
		}
		out[ns] = ifaces
	}
	return out
}

// checkInterfaceName checks an [imports]/[exports] namespace or interface
// name against ^[a-z][a-z0-9-]*$ (upstream rule 5).
func (d *decoder) checkInterfaceName(p keyPath, name, what string) {
	ok := name != "" && name[0] >= 'a' && name[0] <= 'z'
	for i := 1; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		d.errorf(p, "%s name %q is invalid: it must start with a lowercase letter and contain only lowercase letters, digits and hyphens (^[a-z][a-z0-9-]*$)", what, name)
	}
}

// countInterfaces counts the interfaces in an [imports] or [exports] map.
func countInterfaces[T any](m map[string]map[string]T) int {
	n := 0
	for _, ifaces := range m {
		n += len(ifaces)
	}
	return n
}

// contextFiles decodes [[context_file]].
func (d *decoder) contextFiles(ts []*table) []ContextFile {
	var out []ContextFile
	for _, t := range ts {
		var c ContextFile
		c.Name = t.requiredStr("name", `the name of the context, e.g. name = "style-guide"`)
		c.File = d.requiredFile(t, "the context file", "context/style.md")
		t.done(nil)
		out = append(out, c)
	}
	return out
}

// commands decodes [[command]].
func (d *decoder) commands(ts []*table) []Command {
	var out []Command
	for _, t := range ts {
		var c Command
		c.Name = t.requiredStr("name", `the command name, e.g. name = "review"`)
		c.Description, _ = t.str("description")
		if f, ok := t.str("file"); ok {
			c.File = f
			d.checkLocalPath(t.at("file"), f, "the command file", "commands/review.md")
		}
		t.done(nil)
		out = append(out, c)
	}
	return out
}

// mcpServers decodes [[mcp_server]].
func (d *decoder) mcpServers(ts []*table) []MCPServer {
	var out []MCPServer
	for _, t := range ts {
		var s MCPServer
		s.ID = t.requiredStr("id", `the server id, e.g. id = "github"`)
		s.Description, _ = t.str("description")
		s.Type, _ = t.str("type")
		s.Command, _ = t.str("command")
		s.Args = t.strList("args")
		t.done(nil)
		out = append(out, s)
	}
	return out
}

// skills decodes [[skill]].
func (d *decoder) skills(ts []*table) []Skill {
	var out []Skill
	for _, t := range ts {
		var s Skill
		s.Name = t.requiredStr("name", `the skill name, e.g. name = "summarize"`)
		s.Description, _ = t.str("description")
		s.File = d.requiredFile(t, "the skill file", "skills/summarize.md")
		t.done(nil)
		out = append(out, s)
	}
	return out
}

// uplinkProfiles are the valid values of [[uplink]].profile.
var uplinkProfiles = []string{"chat", "interactive", "notify", "bridge"}

// uplinks decodes [[uplink]].
func (d *decoder) uplinks(ts []*table) []Uplink {
	var out []Uplink
	for _, t := range ts {
		var u Uplink
		u.Name = t.requiredStr("name", `the uplink name, e.g. name = "telegram"`)
		u.Platform = t.requiredStr("platform", `the platform, e.g. platform = "telegram"`)
		u.Profile = t.requiredStr("profile", `one of "chat", "interactive", "notify" or "bridge"`)
		if u.Profile != "" && !slices.Contains(uplinkProfiles, u.Profile) {
			d.errorf(t.at("profile"), "%q is not an uplink profile; want \"chat\", \"interactive\", \"notify\" or \"bridge\"", u.Profile)
		}
		t.done(nil)
		out = append(out, u)
	}
	return out
}

// requiredFile reads the required key "file" of t and checks that it is
// a path inside the capsule directory.
func (d *decoder) requiredFile(t *table, what, example string) string {
	f, ok := t.str("file")
	switch {
	case ok:
		d.checkLocalPath(t.at("file"), f, what, example)
	case !t.has("file"):
		d.errorf(t.at("file"), "required: the path of %s relative to the capsule directory, e.g. file = %q", what, example)
	}
	return f
}
