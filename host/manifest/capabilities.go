package manifest

import "github.com/astrid-go/astrid/bus/topics"

// capabilities decodes a [capabilities] table, at the root or in a
// [[component]].
func (d *decoder) capabilities(t *table) Capabilities {
	var c Capabilities
	c.Uplink = t.boolean("uplink")
	c.Net = t.strList("net")
	c.KV = t.strList("kv")
	c.FSRead = t.strList("fs_read")
	c.FSWrite = t.strList("fs_write")
	c.HostProcess = t.strList("host_process")
	c.NetBind = t.strList("net_bind")
	c.IPCPublish = t.strList("ipc_publish")
	c.IPCSubscribe = t.strList("ipc_subscribe")
	c.Identity = t.strList("identity")
	c.AllowPromptInjection = t.boolean("allow_prompt_injection")
	c.ProcessNetwork = t.boolean("process_network")
	t.done(capabilityHints)
	return c
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
