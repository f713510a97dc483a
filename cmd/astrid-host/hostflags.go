package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/sandbox"
)

// hostFlags are the flags of every command that starts a host.
type hostFlags struct {
	shim         string
	state        string
	workspace    string
	logLevel     string
	allowPrivate bool
	sandbox      string
	// spares is host.Config.SpareShims: commands that load one capsule and exit set -1, as a
	// spare shim would only be started to be killed.
	spares int
}

func (f *hostFlags) register(fs *flag.FlagSet, defaultLevel string) {
	fs.StringVar(&f.shim, "shim", "", "astrid-shim executable (default: astrid-shim next to astrid-host)")
	fs.StringVar(&f.state, "state", "", "state directory; compiled modules are cached in STATE/modules (default: $ASTRID_STATE_DIR, else $XDG_STATE_HOME/astrid, else ~/.local/state/astrid)")
	fs.StringVar(&f.workspace, "workspace", "", "workspace directory capsules work in (default: the current directory)")
	fs.StringVar(&f.logLevel, "log-level", defaultLevel, "log level of the host and the capsules (what get_log_level reports): trace, debug, info, warn, error or off")
	fs.StringVar(&f.sandbox, "sandbox", "required", "sandbox policy for the shims and the processes capsules spawn: required (refuse to start them when namespaces or landlock are missing), best-effort (apply what this machine supports, warn about the rest) or off (process group only; for tests). 'astrid-host doctor' shows what this machine supports")
	fs.BoolVar(&f.allowPrivate, "allow-private-network", false, "let capsules' HTTP requests reach loopback, private, link-local and other non-public addresses (for tests; refused by default)")
}

// newHost verifies the shim and builds a host from the flags.
func (f *hostFlags) newHost(stderr io.Writer) (*host.Host, hclog.Logger, error) {
	h, logger, _, err := f.newHostIn(stderr)
	return h, logger, err
}

// newHostIn is newHost that also returns the state directory it chose.
func (f *hostFlags) newHostIn(stderr io.Writer) (*host.Host, hclog.Logger, string, error) {
	level := hclog.LevelFromString(f.logLevel)
	if level == hclog.NoLevel {
		return nil, nil, "", fmt.Errorf("--log-level %q: want trace, debug, info, warn, error or off", f.logLevel)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "astrid-host", Output: stderr, Level: level})
	shimPath := f.shim
	if shimPath == "" {
		p, err := host.FindShim()
		if err != nil {
			return nil, nil, "", err
		}
		shimPath = p
	}
	state := f.state
	if state == "" {
		var err error
		if state, err = defaultStateDir(); err != nil {
			return nil, nil, "", err
		}
	}
	// The shim's hash keys the module cache; it is remembered there, so a start reads the 40 MB
	// shim only when it has changed.
	shim, err := host.VerifyShimCached(shimPath, state)
	if err != nil {
		return nil, nil, "", err
	}
	workspace := f.workspace
	if workspace == "" {
		if workspace, err = os.Getwd(); err != nil {
			return nil, nil, "", err
		}
	}
	if fi, err := os.Stat(workspace); err != nil || !fi.IsDir() {
		return nil, nil, "", fmt.Errorf("--workspace %s: not a directory", workspace)
	}
	sb, err := newSandbox(f.sandbox, logger)
	if err != nil {
		return nil, nil, "", err
	}
	h, err := host.New(host.Config{Shim: shim, StateDir: state, Workspace: workspace, Logger: logger, LogLevel: level, AllowPrivateNetwork: f.allowPrivate, Sandbox: sb, SpareShims: f.spares})
	if err != nil {
		return nil, nil, "", err
	}
	// go-plugin creates the host side's broker sockets in the host's temporary directory.
	if err := os.Setenv("TMPDIR", h.RuntimeDir()); err != nil {
		return nil, nil, "", err
	}
	logger.Debug("host ready", "shim", shim.Path, "shim_sha256", shim.SHA256, "state", state, "module_cache", h.Cache().Dir())
	return h, logger, state, nil
}

// newSandbox probes this machine's sandbox layers once and returns the sandbox for policy, with
// the helper sandboxHelper picks.
func newSandbox(policyName string, logger hclog.Logger) (*sandbox.Sandbox, error) {
	policy, err := sandbox.ParsePolicy(policyName)
	if err != nil {
		return nil, fmt.Errorf("--sandbox: %w", err)
	}
	if policy == sandbox.Off {
		logger.Warn("sandbox off: shims and spawned processes get only their own process group (--sandbox=off)")
		return sandbox.New("", policy, nil), nil
	}
	helper, check, err := sandboxHelper(logger)
	if err != nil {
		return nil, err
	}
	support := sandbox.Probe(helper)
	logger.Debug("sandbox layers", "policy", policy, "support", support.Summary(), "helper", helper)
	for _, l := range support.Missing() {
		logger.Warn("sandbox layer unavailable", "layer", l, "why", support.Reason(l), "policy", policy)
	}
	return sandbox.New(helper, policy, support).WithHelperCheck(check), nil
}

// sandboxHelper is the sandbox's helper and the check to run before each of its starts: the
// astrid-sandbox next to astrid-host, verified and pinned as the shim is (host.VerifyHelper), or,
// when there is none, astrid-host itself re-executed with sandbox.HelperArg (no check: it is the
// running program), whose heavier start each shim start pays (logged at debug).
func sandboxHelper(logger hclog.Logger) (string, func() error, error) {
	path, err := host.FindHelper()
	if err != nil {
		return "", nil, fmt.Errorf("sandbox helper: %w", err)
	}
	if path != "" {
		bin, err := host.VerifyHelper(path)
		if err != nil {
			return "", nil, fmt.Errorf("sandbox helper: %w", err)
		}
		return bin.Path, bin.Recheck, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("sandbox helper: %w", err)
	}
	logger.Debug("no "+host.HelperName+" next to astrid-host: astrid-host is its own sandbox helper (each shim start costs more CPU)", "self", self)
	return self, nil, nil
}

func defaultStateDir() (string, error) {
	if d := os.Getenv("ASTRID_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "astrid"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set --state or $ASTRID_STATE_DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "state", "astrid"), nil
}

// keyValues is a repeatable K=V flag.
type keyValues map[string]string

func (kv keyValues) String() string {
	var parts []string
	for k, v := range kv {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	kv[k] = v
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, s)
	return nil
}
