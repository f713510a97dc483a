package fsroot

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Gate is the capsule's [capabilities] fs_read and fs_write, resolved to physical path
// prefixes, as upstream's ManifestSecurityGate: `cwd://rest` is the workspace's rest, `home://rest`
// the principal home's rest, `*` anything under the workspace, and any other entry a literal
// absolute prefix. A path is allowed when one prefix is a whole-component prefix of it
// (`/ws/src` allows `/ws/src` and `/ws/src/a`, not `/ws/src-evil`) and it has no ".." component.
type Gate struct {
	capsule   string
	read      []string
	write     []string
	workspace string
}

// NewGate resolves the capsule's fs_read and fs_write entries against the physical paths of the
// workspace and the principal's home. An empty workspace or home drops the entries of its scheme
// (and, for the workspace, `*`): a call gates with the entries of the root its path names only,
// so a `cwd://` entry never grants the home even where the home lies inside the workspace (a
// state directory inside it), nor a `home://` entry the workspace.
func NewGate(capsule string, fsRead, fsWrite []string, workspace, home string) *Gate {
	return &Gate{
		capsule:   capsule,
		read:      resolvePrefixes(fsRead, workspace, home),
		write:     resolvePrefixes(fsWrite, workspace, home),
		workspace: workspace,
	}
}

// resolvePrefixes turns manifest entries into physical prefixes. An entry whose path has a ".."
// component grants nothing (upstream keeps the ".." and so never matches a physical path), and
// so does an empty or relative one.
func resolvePrefixes(entries []string, workspace, home string) []string {
	var out []string
	for _, e := range entries {
		var p string
		switch {
		case e == "*":
			if workspace != "" {
				out = append(out, "*")
			}
			continue
		case strings.HasPrefix(e, "cwd://"):
			if workspace == "" {
				continue
			}
			p = workspace + "/" + strings.TrimPrefix(e, "cwd://")
		case strings.HasPrefix(e, "home://"):
			if home == "" {
				continue
			}
			p = home + "/" + strings.TrimPrefix(e, "home://")
		default:
			p = e
		}
		if hasDotDot(p) || !filepath.IsAbs(p) {
			continue
		}
		out = append(out, filepath.Clean(p))
	}
	return out
}

// hasDotDot reports whether a slash-separated path has a ".." component.
func hasDotDot(p string) bool {
	for c := range strings.SplitSeq(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// under reports whether path is prefix or lies beneath it, component-wise.
func under(path, prefix string) bool {
	return path == prefix || prefix == "/" || strings.HasPrefix(path, prefix+"/")
}

// CheckRead allows or refuses reading path (a physical absolute path), in upstream's words.
func (g *Gate) CheckRead(path string) error {
	if g.allows(path, g.read) {
		return nil
	}
	return fmt.Errorf("capsule '%s' denied: read access to '%s' not declared in manifest", g.capsule, path)
}

// CheckWrite allows or refuses writing path (a physical absolute path), in upstream's words.
func (g *Gate) CheckWrite(path string) error {
	if g.allows(path, g.write) {
		return nil
	}
	return fmt.Errorf("capsule '%s' denied: write access to '%s' not declared in manifest", g.capsule, path)
}

func (g *Gate) allows(path string, prefixes []string) bool {
	if hasDotDot(path) {
		return false
	}
	for _, p := range prefixes {
		if p == "*" {
			p = g.workspace
		}
		if under(path, p) {
			return true
		}
	}
	return false
}
