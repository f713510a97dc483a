package process

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvironment: the child sees the pass-through variables the host has and the request's
// variables, and nothing else.
func TestEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "env",
		Env: map[string]string{"FOO": "bar baz", "LANG": "de_DE.UTF-8", "EMPTY": "", "lower_case": "ok"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("env: %+v, %v", res, err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	if e.sandbox.Policy().String() != "off" {
		delete(got, "TMPDIR") // a sandbox without a mount namespace points TMPDIR at the private tmp
	}
	want := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "TZ": "UTC", "LANG": "de_DE.UTF-8",
		"FOO": "bar baz", "EMPTY": "", "lower_case": "ok"}
	if !maps.Equal(got, want) {
		t.Fatalf("child environment %v, want %v", got, want)
	}
}

// TestEnvironmentRefused: reserved and malformed variables are refused, naming the key.
func TestEnvironmentRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type env = map[string]string
	tests := []struct {
		env  env
		want string
	}{
		{env{"FOO": "x\x00y"}, `invalid env value of "FOO": it contains a NUL byte`},
		{env{"FOO": strings.Repeat("x", MaxEnvValueBytes+1)}, `invalid env value of "FOO": 65537 bytes, at most 65536`},
		{env{"1X": "x"}, `invalid env key "1X": it must match [A-Za-z_][A-Za-z0-9_]*`},
		{env{"A-B": "x"}, `invalid env key "A-B"`},
		{env{"": "x"}, `invalid env key ""`},
		{env{"A=B": "x"}, `invalid env key "A=B"`},
	}
	for _, k := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "DYLD_INSERT_LIBRARIES", "ld_preload", "Path"} {
		tests = append(tests, struct {
			env  env
			want string
		}{env{"OK": "1", k: "x"}, `env key "` + k + `" is reserved`})
	}
	tooMany := env{}
	for i := range MaxEnvEntries + 1 {
		tooMany["V"+itoa(i)] = ""
	}
	tests = append(tests, struct {
		env  env
		want string
	}{tooMany, "invalid env: 257 entries, at most 256"})

	for _, tt := range tests {
		for _, background := range []bool{false, true} {
			req := SpawnRequest{Cmd: "true", Env: tt.env}
			var err error
			if background {
				_, err = e.m.SpawnBackground(context.Background(), alice, req)
			} else {
				_, err = e.m.Spawn(context.Background(), alice, req)
			}
			wantErrContaining(t, err, tt.want)
		}
	}
}

// TestEnvironmentRule: every variable that lets the caller run code in the child, choose what
// runs, or move the configuration a program reads is refused, naming the key and why; other
// variables, including look-alikes, pass.
func TestEnvironmentRule(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		key string
		why string // "" = allowed
	}{
		// The ones an attacker used (issue 10), then each family.
		{"SHELLOPTS", whyShell}, {"PS4", whyShell}, {"GIT_SSH_COMMAND", whyTool}, {"PYTHONSTARTUP", whyTool}, {"HOME", whyConfig},
		{"PATH", whyLoader}, {"path", whyLoader}, {"LD_PRELOAD", whyLoader}, {"LD_AUDIT", whyLoader}, {"DYLD_INSERT_LIBRARIES", whyLoader},
		{"GCONV_PATH", whyLoader}, {"GLIBC_TUNABLES", whyLoader}, {"LOCPATH", whyLoader}, {"NLSPATH", whyLoader}, {"HOSTALIASES", whyLoader},
		{"BASH_ENV", whyShell}, {"ENV", whyShell}, {"BASHOPTS", whyShell}, {"BASH_FUNC_x", whyShell}, {"BASH_XTRACEFD", whyShell},
		{"BASH_LOADABLES_PATH", whyShell}, {"PS1", whyShell}, {"PROMPT_COMMAND", whyShell}, {"IFS", whyShell}, {"CDPATH", whyShell},
		{"GLOBIGNORE", whyShell}, {"ZDOTDIR", whyShell}, {"FPATH", whyShell}, {"INPUTRC", whyShell}, {"HISTFILE", whyShell},
		{"SHELL", whyCommand}, {"EDITOR", whyCommand}, {"VISUAL", whyCommand}, {"PAGER", whyCommand}, {"LESSOPEN", whyCommand},
		{"SSH_ASKPASS", whyCommand}, {"MAKEFLAGS", whyCommand}, {"JAVA_TOOL_OPTIONS", whyCommand}, {"_JAVA_OPTIONS", whyCommand},
		{"CLASSPATH", whyCommand}, {"RUSTC_WRAPPER", whyCommand}, {"GOFLAGS", whyCommand}, {"GOTOOLCHAIN", whyCommand},
		{"XDG_CONFIG_HOME", whyConfig}, {"xdg_data_home", whyConfig},
		{"GIT_EXEC_PATH", whyTool}, {"GIT_CONFIG_GLOBAL", whyTool}, {"GIT_PAGER", whyTool}, {"PYTHONPATH", whyTool},
		{"PYTHONHOME", whyTool}, {"PYTHONBREAKPOINT", whyTool}, {"PYTHONWARNINGS", whyTool}, {"PERL5OPT", whyTool}, {"PERL5LIB", whyTool},
		{"RUBYOPT", whyTool}, {"RUBYLIB", whyTool}, {"NODE_OPTIONS", whyTool}, {"NODE_PATH", whyTool}, {"npm_config_script_shell", whyTool},
		{"GEM_PATH", whyTool}, {"BUNDLE_GEMFILE", whyTool}, {"LUA_INIT", whyTool}, {"CARGO_BUILD_RUSTC_WRAPPER", whyTool},
		{"ASTRID_SESSION_TOKEN", whyHost}, {"ASTRID_TEST_MARK", ""},
		// Allowed: the program's own settings, and names that only look alike.
		{"FOO", ""}, {"LANG", ""}, {"TZ", ""}, {"GITHUB_TOKEN", ""}, {"HOMEPAGE", ""}, {"PATHS", ""}, {"ENVIRONMENT", ""},
		{"PS", ""}, {"MY_PATH", ""}, {"NODE", ""}, {"LD", ""}, {"CC", ""},
	} {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			err := checkEnvVar(tt.key, "x")
			if tt.why == "" {
				if err != nil {
					t.Fatalf("%s refused: %v", tt.key, err)
				}
				return
			}
			wantErrContaining(t, err, `env key "`+tt.key+`" is reserved and may not be set`, tt.why)
		})
	}
}

// TestCwd: cwd is a directory inside the workspace; escapes are refused.
func TestCwd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	outside := t.TempDir()
	ws := realPath(t, e.workspace)
	for _, dir := range []string{"a/b", "a/c"} {
		if err := os.MkdirAll(filepath.Join(e.workspace, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"out": outside, "a/up": "../..", "in": "a/b", "a/root": "/"} {
		if err := os.Symlink(target, filepath.Join(e.workspace, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.workspace, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cwd, want, err string
	}{
		{cwd: "", want: ws},
		{cwd: ".", want: ws},
		{cwd: "a/b", want: ws + "/a/b"},
		{cwd: "a/b/", want: ws + "/a/b"},
		{cwd: "./a", want: ws + "/a"},
		{cwd: "in", want: ws + "/a/b"},
		{cwd: "/etc", err: `invalid cwd "/etc": it must be relative to the workspace, not absolute`},
		{cwd: ws, err: "not absolute"},
		{cwd: "..", err: `invalid cwd "..": it must not contain ".."`},
		{cwd: "a/../a", err: `must not contain ".."`},
		{cwd: "a/b/../../..", err: `must not contain ".."`},
		{cwd: "out", err: `invalid cwd "out": it leads outside the workspace (through a symlink)`},
		{cwd: "a/up", err: "leads outside the workspace"},
		{cwd: "a/root/etc", err: "leads outside the workspace"},
		{cwd: "missing", err: `invalid cwd "missing": no such directory in the workspace`},
		{cwd: "file", err: `invalid cwd "file": not a directory`},
	}
	for _, tt := range tests {
		res, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "pwd", Cwd: tt.cwd})
		if tt.err != "" {
			wantErrContaining(t, err, tt.err)
			continue
		}
		if err != nil || res.Stdout != tt.want+"\n" {
			t.Errorf("cwd %q: %q, %v; want %q", tt.cwd, res.Stdout, err, tt.want)
		}
	}
}

// TestCommand: cmd must be allowed, and must exist.
func TestCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.workspace, "tool.sh"), []byte("#!/bin/sh\necho tool \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"rm", "/usr/bin/sh", "sh ", ""} {
		want := "Security Check Failed: capsule 'test-capsule' denied: host process '" + cmd + "' not declared in manifest"
		_, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: cmd})
		wantErr(t, err, want)
		_, err = e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: cmd})
		wantErr(t, err, want)
	}
	_, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "missing-program"})
	wantErr(t, err, `failed to spawn command: "missing-program": executable file not found in $PATH`)
	_, err = e.m.SpawnBackground(context.Background(), alice, SpawnRequest{Cmd: "missing-program"})
	wantErr(t, err, `failed to spawn background process: "missing-program": executable file not found in $PATH`)
	_, err = e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "sh", Args: []string{"-c", "x\x00"}})
	wantErr(t, err, "invalid args: args[1] contains a NUL byte")

	res, err := e.m.Spawn(context.Background(), alice, SpawnRequest{Cmd: "./tool.sh", Args: []string{"x"}})
	if err != nil || res.Stdout != "tool x\n" {
		t.Fatalf("a workspace program: %+v, %v", res, err)
	}
}

func TestResolveProgram(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"exe": 0o755, "plain": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		cmd, path, want, err string
	}{
		{cmd: "exe", path: "/nonexistent:" + dir, want: dir + "/exe"},
		{cmd: "exe", path: "relative:" + dir, want: dir + "/exe"},
		{cmd: "exe", path: ".", err: "executable file not found"},
		{cmd: "plain", path: dir, err: "executable file not found"},
		{cmd: "exe", path: "", err: "executable file not found"},
		{cmd: dir + "/exe", path: "", want: dir + "/exe"},
		{cmd: dir + "/plain", err: "not executable"},
		{cmd: dir + "/", err: "is a directory"},
		{cmd: "./exe", want: dir + "/exe"},
	}
	for _, tt := range tests {
		got, err := resolveProgram(tt.cmd, dir, tt.path)
		if tt.err != "" {
			wantErrContaining(t, err, tt.err)
		} else if err != nil || got != tt.want {
			t.Errorf("resolveProgram(%q, PATH=%q) = %q, %v; want %q", tt.cmd, tt.path, got, err, tt.want)
		}
	}
	if got := programPaths("/usr/bin/sh", "/ws"); len(got) != 0 {
		t.Errorf("a system program needs no extra path: %v", got)
	}
	if got := programPaths("/ws/tool", "/ws"); len(got) != 0 {
		t.Errorf("a workspace program needs no extra path: %v", got)
	}
	if got := programPaths(dir+"/exe", "/ws"); len(got) != 1 || got[0] != dir+"/exe" {
		t.Errorf("a program elsewhere is added: %v", got)
	}
}
