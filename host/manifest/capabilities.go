package manifest

import "github.com/astrid-go/astrid/bus/topics"

// capabilities decodes a [capabilities] table, at the root or in a
// [[component]].
func (d *decoder) capabilities(t *table) Capabilities {
	var c Capabilities
	for _, f := range c.fields() {
		if f.flag != nil {
			*f.flag = t.boolean(f.key)
		} else {
			*f.list = t.strList(f.key)
		}
	}
	t.done(capabilityHints)
	return c
}

// capabilityField is one field of Capabilities by its TOML key: a boolean
// (flag) or a list.
type capabilityField struct {
	key  string
	flag *bool
	list *[]string
}

// fields lists every field of c with its TOML key: the one table the
// decoder and Granted read, so a field cannot be decoded under one name and
// looked up under another (a test checks that it covers every field).
func (c *Capabilities) fields() []capabilityField {
	return []capabilityField{
		{key: "uplink", flag: &c.Uplink},
		{key: "net", list: &c.Net},
		{key: "kv", list: &c.KV},
		{key: "fs_read", list: &c.FSRead},
		{key: "fs_write", list: &c.FSWrite},
		{key: "host_process", list: &c.HostProcess},
		{key: "net_bind", list: &c.NetBind},
		{key: "ipc_publish", list: &c.IPCPublish},
		{key: "ipc_subscribe", list: &c.IPCSubscribe},
		{key: "identity", list: &c.Identity},
		{key: "allow_prompt_injection", flag: &c.AllowPromptInjection},
		{key: "process_network", flag: &c.ProcessNetwork},
	}
}

// CapabilityNames are the TOML keys of every [capabilities] field, in
// declaration order.
func CapabilityNames() []string {
	var c Capabilities
	fields := c.fields()
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return names
}

// Granted reports whether the [capabilities] field named by its TOML key
// grants anything: a boolean field's value, a list field when it is not
// empty. An unknown name is not granted. It answers
// astrid_check_capsule_capability, which upstream 0.5 answers for
// allow_prompt_injection only and this runtime for every field.
func (c Capabilities) Granted(name string) bool {
	for _, f := range c.fields() {
		if f.key != name {
			continue
		}
		if f.flag != nil {
			return *f.flag
		}
		return len(*f.list) > 0
	}
	return false
}

// checkPatterns checks that every string in the topic-pattern list at key
// k of t has valid segments (upstream rule 4). Upstream checks only
// ipc_publish; this runtime checks ipc_subscribe too, because its ACLs are
// real patterns matched by the bus and a malformed one would silently never
// match.
func (d *decoder) checkPatterns(t *table, k string) {
	arr, _ := t.m[k].([]any)
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			continue // reported by strList
		}
		if err := topics.CheckSegments(s); err != nil {
			d.errorf(t.at(k).index(i), "%s pattern %q %v", k, s, err)
		}
	}
}

// unmergedMessage is the warning for a component capability that upstream
// v0.5 does not merge into the capsule's capabilities.
const unmergedMessage = "only fs_read, fs_write, host_process, net and net_bind are merged from a component's capabilities (as upstream v0.5 does); this entry is ignored: declare it in the top-level [capabilities]"

// warnUnmerged warns about each capability of a component (table at p)
// that mergeCapabilities leaves out.
func (d *decoder) warnUnmerged(p keyPath, c Capabilities) {
	for _, f := range []struct {
		key string
		set bool
	}{
		{"uplink", c.Uplink},
		{"kv", len(c.KV) > 0},
		{"ipc_publish", len(c.IPCPublish) > 0},
		{"ipc_subscribe", len(c.IPCSubscribe) > 0},
		{"identity", len(c.Identity) > 0},
		{"allow_prompt_injection", c.AllowPromptInjection},
		{"process_network", c.ProcessNetwork},
	} {
		if f.set {
			d.warnf(p.key(f.key), unmergedMessage)
		}
	}
}

// mergeCapabilities merges the capabilities of a component into those of
// the capsule the way upstream v0.5 does: the fs_read, fs_write,
// host_process, net and net_bind lists are appended; nothing else is
// merged.
func mergeCapabilities(root, comp *Capabilities) {
	root.FSRead = append(root.FSRead, comp.FSRead...)
	root.FSWrite = append(root.FSWrite, comp.FSWrite...)
	root.HostProcess = append(root.HostProcess, comp.HostProcess...)
	root.Net = append(root.Net, comp.Net...)
	root.NetBind = append(root.NetBind, comp.NetBind...)
}
