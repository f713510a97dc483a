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

// reservedEnv are the keys a request may not set: they change what the child runs (PATH,
// interpreter start-up files and module paths, the dynamic loader's variables under the LD_ and
// DYLD_ prefixes) or carry the host's secrets.
var reservedEnv = []string{
	"PATH", "ASTRID_SESSION_TOKEN", "BASH_ENV", "ENV", "GCONV_PATH", "NODE_OPTIONS", "PERL5OPT",
	"PYTHONHOME", "PYTHONPATH", "RUBYOPT", "ZDOTDIR",
}

var reservedEnvPrefixes = []string{"LD_", "DYLD_"}

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
	dir, err := resolveCwd(workspace, req.Cwd)
	if err != nil {
		return sandbox.Spec{}, err
	}
	path, err := resolveProgram(req.Cmd, dir, m.cfg.PassEnv["PATH"])
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("%s: %v", failText, err)
	}
	return sandbox.Spec{
		Path:      path,
		Args:      slices.Clone(req.Args),
		Env:       env,
		Dir:       dir,
		Network:   m.cfg.Network,
		ReadOnly:  programPaths(path, workspace),
		ReadWrite: []string{workspace},
		Cgroup:    sandbox.CgroupLimits{Pids: PidsLimit},
	}, nil
}

// environment is the child's whole environment: the pass-through variables the host has, then
// the request's variables, sorted by key.
func (m *Manager) environment(requested map[string]string) ([]string, error) {
	if len(requested) > MaxEnvEntries {
		return nil, fmt.Errorf("invalid env: %d entries, at most %d", len(requested), MaxEnvEntries)
	}
	vars := make(map[string]string, len(passThroughEnv)+len(requested))
	for _, k := range passThroughEnv {
		if v, ok := m.cfg.PassEnv[k]; ok {
			vars[k] = v
		}
	}
	for _, k := range sortedKeys(requested) { // sorted: the first bad key is always the same one
		v := requested[k]
		if err := checkEnvVar(k, v); err != nil {
			return nil, err
		}
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for _, k := range sortedKeys(vars) {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}

// checkEnvVar validates one requested variable.
func checkEnvVar(key, value string) error {
	if !validEnvKey(key) {
		return fmt.Errorf("invalid env key %q: it must match [A-Za-z_][A-Za-z0-9_]*", key)
	}
	upper := strings.ToUpper(key)
	if slices.Contains(reservedEnv, upper) {
		return fmt.Errorf("env key %q is reserved and may not be set", key)
	}
	for _, prefix := range reservedEnvPrefixes {
		if strings.HasPrefix(upper, prefix) {
			return fmt.Errorf("env key %q is reserved and may not be set (no %s* variables)", key, prefix)
		}
	}
	if len(value) > MaxEnvValueBytes {
		return fmt.Errorf("invalid env value of %q: %d bytes, at most %d", key, len(value), MaxEnvValueBytes)
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("invalid env value of %q: it contains a NUL byte", key)
	}
	return nil
}

func validEnvKey(key string) bool {
	if key == "" {
		return false
	}
	for i, c := range []byte(key) {
		letter := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
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
