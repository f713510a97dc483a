package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/astrid-go/astrid/sandbox"
)

// systemDirs are the directories every sandboxed process may read and execute (sandbox.Spec).
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt"}

// prepare checks a spawn request against the manifest and turns it into a sandbox spec.
// failText prefixes the failure to find the program, as upstream prefixes a failure to spawn.
func (m *Manager) prepare(req SpawnRequest, failText string) (sandbox.Spec, error) {
	if !slices.Contains(m.cfg.Allowed, req.Cmd) {
		return sandbox.Spec{}, fmt.Errorf("Security Check Failed: capsule '%s' denied: host process '%s' not declared in manifest", m.cfg.CapsuleID, req.Cmd)
	}
	for i, a := range req.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return sandbox.Spec{}, fmt.Errorf("invalid args: args[%d] contains a NUL byte", i)
		}
	}
	env, err := m.environment(req.Env)
	if err != nil {
		return sandbox.Spec{}, err
	}
	workspace, err := m.workspace()
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("%s: %v", failText, err)
	}
	hidden := m.hidden()
	if h := hiddenHolding(hidden, workspace); h != "" {
		return sandbox.Spec{}, fmt.Errorf("%s: the workspace %s is inside the host's own directory %s, which processes may not reach; use another workspace", failText, workspace, h)
	}
	dir, err := resolveCwd(workspace, req.Cwd)
	if err != nil {
		return sandbox.Spec{}, err
	}
	if hiddenHolding(hidden, dir) != "" {
		return sandbox.Spec{}, fmt.Errorf("invalid cwd %q: it is inside the host's own directory %s, which processes may not reach", req.Cwd, hiddenHolding(hidden, dir))
	}
	path, err := resolveProgram(req.Cmd, dir, m.cfg.PassEnv["PATH"])
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("%s: %v", failText, err)
	}
	if h := hiddenHolding(hidden, realOr(path)); h != "" {
		return sandbox.Spec{}, fmt.Errorf("%s: %q is inside the host's own directory %s, which processes may not reach", failText, req.Cmd, h)
	}
	return sandbox.Spec{
		Path:      path,
		Args:      slices.Clone(req.Args),
		Env:       env,
		Dir:       dir,
		Network:   m.cfg.Network,
		ReadOnly:  programPaths(path, workspace),
		ReadWrite: []string{workspace},
		Hidden:    hidden,
		Cgroup:    sandbox.CgroupLimits{Pids: PidsLimit, MemoryBytes: m.cfg.MemoryBytes},
	}, nil
}

// hidden returns the real paths of Config.Hidden that exist (a missing one holds nothing).
func (m *Manager) hidden() []string {
	var out []string
	for _, p := range m.cfg.Hidden {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			if abs, err := filepath.Abs(r); err == nil {
				out = append(out, abs)
			}
		}
	}
	return out
}

// hiddenHolding returns the hidden directory path is in (or is), "" when none.
func hiddenHolding(hidden []string, path string) string {
	for _, h := range hidden {
		if within(h, path) {
			return h
		}
	}
	return ""
}

// realOr is path without symlinks, or path itself when that cannot be resolved.
func realOr(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// workspace is the workspace's real path: the sandbox's rules and the containment check need
// the path without symlinks.
func (m *Manager) workspace() (string, error) {
	if m.cfg.Workspace == "" {
		return "", errors.New("the capsule has no workspace")
	}
	ws, err := filepath.EvalSymlinks(m.cfg.Workspace)
	if err != nil {
		return "", fmt.Errorf("workspace: %v", err)
	}
	return filepath.Abs(ws)
}

// resolveCwd resolves a request's cwd, relative to the workspace, to a real directory inside it.
func resolveCwd(workspace, cwd string) (string, error) {
	if cwd == "" || cwd == "." {
		return workspace, nil
	}
	if filepath.IsAbs(cwd) {
		return "", fmt.Errorf("invalid cwd %q: it must be relative to the workspace, not absolute", cwd)
	}
	if slices.Contains(strings.Split(filepath.ToSlash(cwd), "/"), "..") {
		return "", fmt.Errorf("invalid cwd %q: it must not contain \"..\"", cwd)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(workspace, cwd))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("invalid cwd %q: no such directory in the workspace", cwd)
	}
	if err != nil {
		return "", fmt.Errorf("invalid cwd %q: %v", cwd, err)
	}
	if !within(workspace, real) {
		return "", fmt.Errorf("invalid cwd %q: it leads outside the workspace (through a symlink)", cwd)
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("invalid cwd %q: %v", cwd, err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("invalid cwd %q: not a directory", cwd)
	}
	return real, nil
}

// within reports whether path is dir or inside it (both clean and absolute).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// resolveProgram finds the program the sandbox runs: through pathEnv for a bare name (the
// host's PATH, so the child's PATH finds the same program), against dir for a relative path.
func resolveProgram(cmd, dir, pathEnv string) (string, error) {
	if cmd == "" {
		return "", errors.New("no command given")
	}
	if strings.Contains(cmd, "/") {
		path := cmd
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		if err := executable(path); err != nil {
			return "", fmt.Errorf("%q: %v", cmd, err)
		}
		return path, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(d) {
			continue // a relative PATH entry would depend on the host's working directory
		}
		path := filepath.Join(d, cmd)
		if executable(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in $PATH", cmd)
}

// executable checks that path is a file someone may execute.
func executable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return errors.New("is a directory")
	}
	if info.Mode()&0o111 == 0 {
		return errors.New("permission denied: not executable")
	}
	return nil
}

// programPaths are the read-only paths the sandbox must add so the program can run: the
// program and, if it is a symlink, its target, unless they lie in the system directories or
// the workspace the sandbox already allows.
func programPaths(path, workspace string) []string {
	var extra []string
	add := func(p string) {
		for _, d := range append([]string{workspace}, systemDirs...) {
			if within(d, p) {
				return
			}
		}
		if !slices.Contains(extra, p) {
			extra = append(extra, p)
		}
	}
	add(path)
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		add(real)
	}
	return extra
}
