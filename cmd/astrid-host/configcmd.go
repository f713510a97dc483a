package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/astrid-go/astrid/host/envconfig"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/shared/logtext"
)

const configSynopsis = `Usage:
  astrid-host config [--state DIR] NAME
  astrid-host config [--state DIR] NAME KEY=VALUE... [--unset KEY]...
  astrid-host config [--state DIR] NAME --prompt
  astrid-host config [--state DIR] --dir CAPSULE_DIR [KEY=VALUE...] [--unset KEY]... [--prompt]

Shows (with no KEY=VALUE), saves (KEY=VALUE, --unset) or asks for (--prompt) the [env] values of
the installed capsule NAME (STATE/capsules/NAME), or of the development capsule in CAPSULE_DIR. Values are saved in STATE/config/env/NAME.env.json (NAME is the
capsule's package.name; the file is 0600), and every load of the capsule reads them, restarts
included: the guest reads, with config_get and astrid_get_config, the value given to this load
with 'call --config', else the saved value, else the [env] default. A key with none of them (or
an enum of several values with no saved value) is missing: the guest reads "" and the host
publishes astrid.v1.onboarding.required when the capsule loads.

Secret values (type = "secret") are saved in the secret store, STATE/secrets/NAME.json (0600),
not in the .env.json file. Shown is each [env] key, its value and where it comes from (saved,
default or missing). Secret values are never shown: they read ********.

KEY must be an [env] key of the capsule, an enum's value one of its enum_values, and an array's
value a JSON array. A value given on the command line stays in the shell's history: for a
secret, prefer --prompt, which reads it without echo.

Examples:
  astrid-host config weather
  astrid-host config weather units=imperial network=mainnet
  astrid-host config weather --unset units
  astrid-host config weather --prompt
  astrid-host config --dir ./my-capsule greeting=Hi

Exit status: 0 on success, 1 when the configuration cannot be read or saved, 2 for usage errors
(an unknown capsule or key, a value the key does not allow).`

func configCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("config", configSynopsis, stderr)
	state := fs.String("state", "", "state directory (default: $ASTRID_STATE_DIR, else $XDG_STATE_HOME/astrid, else ~/.local/state/astrid)")
	dir := fs.String("dir", "", "a development capsule's directory instead of an installed capsule")
	prompt := fs.Bool("prompt", false, "ask for each missing value on the terminal (secrets without echo) and save the answers")
	var unset stringList
	fs.Var(&unset, "unset", "remove the saved value of `KEY` (repeatable); the key then reads its default")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	var name string
	if len(pos) > 0 && !strings.Contains(pos[0], "=") {
		name, pos = pos[0], pos[1:]
	}
	if name == "" && *dir == "" {
		return usageError(fs, stderr, errors.New("want the NAME of an installed capsule, or --dir CAPSULE_DIR"))
	}
	set := keyValues{}
	for _, kv := range pos {
		if err := set.Set(kv); err != nil {
			return usageError(fs, stderr, err)
		}
	}
	if *prompt && (len(set) > 0 || len(unset) > 0) {
		return usageError(fs, stderr, errors.New("--prompt does not take KEY=VALUE or --unset"))
	}
	stateDir := *state
	if stateDir == "" {
		if stateDir, err = defaultStateDir(); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitUsage
		}
	}
	m, err := configCapsule(stateDir, name, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", logtext.EscapeBlock(err.Error()))
		return exitUsage
	}
	switch {
	case *prompt:
		if _, ok := terminalOf(stdin); !ok {
			fmt.Fprintln(stderr, "error: --prompt needs a terminal on standard input; set values with KEY=VALUE instead")
			return exitUsage
		}
		if err := promptEnv(stdin, stdout, stderr, stateDir, m); err != nil {
			fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
			return exitFailure
		}
		return exitOK
	case len(set) > 0 || len(unset) > 0:
		return saveConfig(stdout, stderr, stateDir, m, set, unset)
	default:
		return showConfig(stdout, stderr, stateDir, m)
	}
}

// configCapsule finds the manifest of the capsule to configure: the installed capsule name, or
// the development capsule in dir (whose package.name must be name, when both are given).
func configCapsule(stateDir, name, dir string) (*manifest.Manifest, error) {
	if dir == "" {
		if name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("%q is not a capsule name; for a capsule directory use --dir %s", name, name)
		}
		dir = store.CapsuleDir(stateDir, name)
		if _, err := os.Stat(filepath.Join(dir, store.ManifestName)); errors.Is(err, iofs.ErrNotExist) {
			return nil, notInstalled(stateDir, name)
		}
	}
	m, _, err := manifest.Load(dir)
	if err != nil {
		return nil, err
	}
	if name != "" && m.ID() != name {
		return nil, fmt.Errorf("%s holds capsule %s, not %s", dir, m.ID(), name)
	}
	return m, nil
}

// notInstalled says that name is not in the store, and what is.
func notInstalled(stateDir, name string) error {
	msg := fmt.Sprintf("capsule %s is not installed in %s", name, store.Dir(stateDir))
	installed, err := store.List(stateDir)
	switch {
	case err != nil:
	case len(installed) == 0:
		msg += " (no capsule is installed)"
	default:
		names := make([]string, len(installed))
		for i, in := range installed {
			names[i] = in.Name
		}
		msg += " (installed: " + strings.Join(names, ", ") + ")"
	}
	return errors.New(msg + "; for a development capsule, pass its directory with --dir CAPSULE_DIR")
}

// saveConfig checks and saves the operator's values.
func saveConfig(stdout, stderr io.Writer, stateDir string, m *manifest.Manifest, set map[string]string, unset []string) int {
	if err := envconfig.Update(stateDir, m, set, unset); err != nil {
		fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
		var invalid *envconfig.InvalidError
		if errors.As(err, &invalid) {
			return exitUsage // a key or value the capsule does not allow
		}
		return exitFailure // the file could not be read or written
	}
	var changed []string
	for k := range set {
		changed = append(changed, k)
	}
	changed = append(changed, unset...)
	slices.Sort(changed)
	fmt.Fprintf(stdout, "updated %s of capsule %s in %s\n", strings.Join(changed, ", "), m.ID(), envconfig.Path(stateDir, m.ID()))
	return exitOK
}

// showConfig prints each [env] key of m with its value (a secret masked) and its source.
func showConfig(stdout, stderr io.Writer, stateDir string, m *manifest.Manifest) int {
	saved, err := envconfig.ReadAll(stateDir, m)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
		return exitFailure
	}
	r := envconfig.Resolve(m, saved, nil)
	path := envconfig.Path(stateDir, m.ID())
	if len(r.Entries) == 0 {
		fmt.Fprintf(stdout, "capsule %s declares no [env] values\n", m.ID())
		return exitOK
	}
	fmt.Fprintf(stdout, "capsule %s (values saved in %s)\n\n", m.ID(), path)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, e := range r.Entries {
		value, source := displayValue(e), e.Source.String()
		if e.Source == envconfig.Missing {
			source += describeWanted(e)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", logtext.Escape(e.Key), value, source)
	}
	tw.Flush()
	for _, w := range r.Warnings {
		fmt.Fprintf(stdout, "\nwarning: %s", logtext.Escape(w))
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(stdout)
	}
	if len(r.Ignored) > 0 {
		fmt.Fprintf(stdout, "\nnote: the saved keys %s are not [env] keys of %s and are ignored; remove them with --unset KEY\n",
			logtext.Escape(strings.Join(r.Ignored, ", ")), m.ID())
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(stdout, "\n%d missing: set with 'astrid-host config %s KEY=VALUE', or 'astrid-host config %s --prompt' on a terminal\n", len(r.Missing), m.ID(), m.ID())
	}
	return exitOK
}

// displayValue is how a resolved value is shown: a secret masked (envconfig.Shown), "" as "",
// a missing one as "-", and everything escaped for the terminal.
func displayValue(e envconfig.Entry) string {
	switch {
	case e.Source == envconfig.Missing:
		return "-"
	case e.Value == "":
		return `""`
	default:
		return logtext.Escape(envconfig.Shown(e.Def, e.Value))
	}
}

// describeWanted says what a missing key wants: a secret, one of an enum's values, a JSON array.
func describeWanted(e envconfig.Entry) string {
	switch f := envconfig.NewField(e.Key, e.Def); {
	case f.FieldType.Kind == "Secret":
		return " (secret)"
	case f.FieldType.Kind == "Array":
		return ` (a JSON array, e.g. '["a","b"]')`
	case len(e.Def.EnumValues) > 0:
		return " (one of: " + logtext.Escape(strings.Join(e.Def.EnumValues, ", ")) + ")"
	}
	return ""
}
