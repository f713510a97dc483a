package fsroot

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Scheme is the root a guest path names.
type Scheme int

const (
	// Workspace: `cwd://rest` or a plain path (a leading "/" is stripped).
	Workspace Scheme = iota
	// Home: `home://rest`, under STATE/home/PRINCIPAL.
	Home
	// Tmp: `/tmp` or `/tmp/rest`, under STATE/home/PRINCIPAL/.local/tmp (inside the home).
	Tmp
)

// tmpDir is where /tmp lies in the principal's home.
var tmpDir = []string{".local", "tmp"}

// Path is a guest's path, parsed.
type Path struct {
	// Raw is the path as the guest gave it.
	Raw string
	// Scheme is the root it names.
	Scheme Scheme
	// Comps are its components below the root of its scheme's directory ("" and "." dropped);
	// for Tmp they start with .local/tmp, the Tmp root in the home.
	Comps []string
	// base is how many leading Comps name the scheme's own root (2 for Tmp).
	base int
	// dotdot is set when the path has a ".." component; it is then refused by the gate.
	dotdot bool
}

// Parse parses a guest's path: its scheme and its components. A path that is not UTF-8 or holds
// a NUL byte is refused (upstream turns the former into the empty path, the workspace itself).
func Parse(raw []byte) (Path, error) {
	if !utf8.Valid(raw) {
		return Path{}, errors.New("path is not valid UTF-8")
	}
	s := string(raw)
	if strings.IndexByte(s, 0) >= 0 {
		return Path{}, errors.New("path contains a NUL byte")
	}
	p := Path{Raw: s}
	var rest string
	switch {
	case strings.HasPrefix(s, "cwd://"):
		rest = s[len("cwd://"):]
	case strings.HasPrefix(s, "home://"):
		p.Scheme, rest = Home, s[len("home://"):]
	case s == "/tmp" || strings.HasPrefix(s, "/tmp/"):
		p.Scheme, rest = Tmp, s[len("/tmp"):]
		p.Comps = append(p.Comps, tmpDir...)
		p.base = len(tmpDir)
	default:
		rest = s
	}
	for c := range strings.SplitSeq(rest, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			p.dotdot = true
		}
		p.Comps = append(p.Comps, c)
	}
	return p, nil
}

// isRoot reports whether the path names its scheme's root itself.
func (p Path) isRoot() bool { return len(p.Comps) == p.base }
