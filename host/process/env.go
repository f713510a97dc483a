package process

import (
	"fmt"
	"strings"
)

// The request's env is a second way, besides the arguments, to tell the program what to do. A
// capsule may run the programs its manifest lists with any arguments, so the environment must
// not widen that: a request may not set a variable that chooses which program or library runs,
// makes a shell or an interpreter run code of the caller's, names a command a program runs, or
// moves the configuration a program reads (which can name commands) somewhere the caller
// writes. Those are the reserved variables below, each with its reason, compared
// case-insensitively; whole prefixes where a tool reads a family of such variables; and the
// host's session token, as upstream. Anything else passes: a program's own settings are the
// capsule's to choose.

// envRule reserves one variable (Prefix false) or every variable that starts with Name.
type envRule struct {
	Name   string
	Prefix bool
	Why    string
}

// Reasons, shared by the rules of each kind.
const (
	whyLoader  = "it chooses which program or library runs"
	whyShell   = "it makes a shell run code or changes how it parses commands"
	whyCommand = "it names a command or start-up code a program runs"
	whyConfig  = "it moves the configuration programs read (which can name commands to run)"
	whyTool    = "the tool reads code, modules or commands to run from its variables"
	whyHost    = "it is the host's"
)

// reservedEnv are the variables a request may not set.
var reservedEnv = []envRule{
	// The program, the dynamic loader and libc.
	{"PATH", false, whyLoader},
	{"LD_", true, whyLoader},
	{"DYLD_", true, whyLoader},
	{"GCONV_PATH", false, whyLoader},
	{"GLIBC_TUNABLES", false, whyLoader},
	{"LOCPATH", false, whyLoader},
	{"NLSPATH", false, whyLoader},
	{"HOSTALIASES", false, whyLoader},
	// Shells: start-up files, traced prompts, exported functions, options, word splitting.
	{"ENV", false, whyShell},
	{"BASH_", true, whyShell}, // BASH_ENV, BASH_FUNC_*, BASH_XTRACEFD, BASH_LOADABLES_PATH...
	{"BASHOPTS", false, whyShell},
	{"SHELLOPTS", false, whyShell},
	{"PS1", false, whyShell},
	{"PS2", false, whyShell},
	{"PS3", false, whyShell},
	{"PS4", false, whyShell},
	{"PROMPT_COMMAND", false, whyShell},
	{"IFS", false, whyShell},
	{"CDPATH", false, whyShell},
	{"GLOBIGNORE", false, whyShell},
	{"EXECIGNORE", false, whyShell},
	{"FPATH", false, whyShell},
	{"ZDOTDIR", false, whyShell},
	{"INPUTRC", false, whyShell},
	{"HISTFILE", false, whyShell},
	// Commands that programs run on the caller's word.
	{"SHELL", false, whyCommand},
	{"EDITOR", false, whyCommand},
	{"VISUAL", false, whyCommand},
	{"PAGER", false, whyCommand},
	{"MANPAGER", false, whyCommand},
	{"LESSOPEN", false, whyCommand},
	{"LESSCLOSE", false, whyCommand},
	{"BROWSER", false, whyCommand},
	{"SSH_ASKPASS", false, whyCommand},
	{"SUDO_ASKPASS", false, whyCommand},
	{"MAKEFLAGS", false, whyCommand},
	{"MFLAGS", false, whyCommand},
	{"GNUMAKEFLAGS", false, whyCommand},
	{"JAVA_TOOL_OPTIONS", false, whyCommand},
	{"_JAVA_OPTIONS", false, whyCommand},
	{"JDK_JAVA_OPTIONS", false, whyCommand},
	{"CLASSPATH", false, whyCommand},
	{"RUSTC_WRAPPER", false, whyCommand},
	{"GOFLAGS", false, whyCommand},
	{"GOENV", false, whyCommand},
	{"GOTOOLCHAIN", false, whyCommand},
	{"GOROOT", false, whyCommand},
	// Where programs find their configuration: ~/.bashrc, ~/.gitconfig, ~/.npmrc, ~/.config/...
	{"HOME", false, whyConfig},
	{"XDG_", true, whyConfig},
	// Families of tools that take code, modules or commands from their variables.
	{"GIT_", true, whyTool},        // GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_CONFIG_*, GIT_PAGER...
	{"PYTHON", true, whyTool},      // PYTHONSTARTUP, PYTHONPATH, PYTHONHOME, PYTHONBREAKPOINT...
	{"PERL", true, whyTool},        // PERL5OPT, PERL5LIB, PERL5DB, PERLLIB...
	{"RUBY", true, whyTool},        // RUBYOPT, RUBYLIB
	{"NODE_", true, whyTool},       // NODE_OPTIONS, NODE_PATH
	{"NPM_CONFIG_", true, whyTool}, // npm_config_script_shell, ...
	{"GEM_", true, whyTool},
	{"BUNDLE_", true, whyTool},
	{"LUA_", true, whyTool},
	{"CARGO_", true, whyTool}, // CARGO_BUILD_RUSTC_WRAPPER, CARGO_TARGET_*_RUNNER
	// The host's own (upstream's).
	{"ASTRID_SESSION_TOKEN", false, whyHost},
}

// reservedBy returns the rule that reserves key, if any.
func reservedBy(key string) (envRule, bool) {
	upper := strings.ToUpper(key)
	for _, r := range reservedEnv {
		if upper == r.Name || r.Prefix && strings.HasPrefix(upper, r.Name) {
			return r, true
		}
	}
	return envRule{}, false
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
	if r, ok := reservedBy(key); ok {
		what := r.Name
		if r.Prefix {
			what += "*"
		}
		return fmt.Errorf("env key %q is reserved and may not be set (%s: %s)", key, what, r.Why)
	}
	if len(value) > MaxEnvValueBytes {
		return fmt.Errorf("invalid env value of %q: %d bytes, at most %d", key, len(value), MaxEnvValueBytes)
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("invalid env value of %q: it contains a NUL byte", key)
	}
	return nil
}

// validEnvKey reports whether key matches [A-Za-z_][A-Za-z0-9_]*.
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
