package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
	"github.com/astrid-go/astrid/shared/logtext"
)

const installSynopsis = `Usage: astrid-host install [flags] SRC

Installs a capsule into the store, STATE/capsules/NAME (NAME = its package.name), from SRC: a
capsule directory, or a bare .wasm file with --name (it gets a Capsule.toml that grants no
capability, package.version = --version or 0.0.0, and the module as NAME.wasm).

The manifest is validated before the store is touched; the capsule's files are copied (regular
files and directories only; a symlink only to a file inside SRC; .git skipped; at most 10,000
entries and 512 MiB, the module at most 256 MiB) and meta.json records the version, the source
and the BLAKE3 hash of the module, which every load from the store checks. Then, in a shim like
any call, the capsule's lifecycle hook runs when it exports one: astrid_install (input "") on a
first install, astrid_upgrade (input: the previous version) over an installed capsule. When the
hook fails, or the capsule does not load, the store is put back exactly as it was. On a terminal,
install then asks for the capsule's [env] values it still misses.

The hook may ask for values with astrid_elicit (text, secret, select, array): --set KEY=VALUE
answers the request for KEY (a select's value must be one of its options; an array is a JSON
array such as '["a","b"]'); on a terminal install asks for the others (secrets without echo);
without a terminal a request with no --set fails the hook at once, naming the key, and the
store is put back. Secrets go to the secret store, STATE/secrets/NAME.json (0600), never to the
KV or the logs. A secret given with --set is visible to other users in the process list: on a
shared machine answer it on the terminal.

Exit status: 0 when installed; 1 when the hook failed or the capsule did not load (nothing
changed), or the store is busy with another install; 2 for usage, manifest or copy errors.

Examples:
  astrid-host install examples/hello
  astrid-host install --set region=eu --set api_key=$KEY ./my-capsule
  astrid-host install --name my-tool --version 1.2.0 ./build/tool.wasm`

const uninstallSynopsis = `Usage: astrid-host uninstall [--state DIR] NAME

Removes the installed capsule NAME from the store (STATE/capsules/NAME). Its saved [env]
configuration and KV data are kept.

Exit status: 0 when removed; 1 when NAME is not installed (the installed capsules are named) or
the store is busy; 2 for usage errors.

Example:
  astrid-host uninstall hello`

const listSynopsis = `Usage: astrid-host list [--state DIR] [--json]

Lists the capsules installed in the store (STATE/capsules): name, version, whether the module
still matches meta.json's BLAKE3 hash (verified, MODIFIED, NO HASH, or why it cannot be checked)
and where it was installed from. First it finishes what an interrupted install left, if any.

Exit status: 0; 1 when the store cannot be read; 2 for usage errors.

Example:
  astrid-host list`

func installCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("install", installSynopsis, stderr)
	var hf hostFlags
	hf.register(fs, "warn")
	name := fs.String("name", "", "the capsule's `NAME` in the store, for a bare .wasm (lowercase letters, digits and '-')")
	version := fs.String("version", "", "the package.version of a bare .wasm, strict semver `MAJOR.MINOR.PATCH` (default 0.0.0)")
	sets := keyValues{}
	fs.Var(sets, "set", "`KEY=VALUE` answering the lifecycle hook's elicit request for KEY (repeatable); needed for each request when install does not run on a terminal")
	timeout := fs.Duration("timeout", 0, "time limit of the lifecycle hook, and of the capsule's start function and _initialize (default: the capsule's [limits] call_timeout)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, fmt.Errorf("want one SRC (a capsule directory or a .wasm file), got %d argument(s)", len(pos)))
	}
	if *timeout < 0 {
		return usageError(fs, stderr, fmt.Errorf("--timeout %s: must be positive", *timeout))
	}
	src := pos[0]
	hf.spares = -1 // one capsule, then exit
	h, _, state, err := hf.newHostIn(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer h.Shutdown(context.Background())

	var hook string
	answers := newInstallAnswers(sets, stdin, stderr)
	stopAnswering := h.AnswerElicit(answers.answer)
	res, err := store.Install(state, src, store.Options{
		Name:    *name,
		Version: *version,
		Hook: func(m *manifest.Manifest, meta, previous *store.Meta) error {
			ran, err := h.RunLifecycle(ctx, m, meta, previous, *timeout)
			hook = ran
			return err
		},
	})
	stopAnswering()
	if res != nil {
		printRecovered(stderr, res.Recovered)
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", logtext.Escape(w.String()))
		}
	}
	if ferr := answers.failure(); ferr != nil {
		fmt.Fprintf(stderr, "error: %s\n", ferr.Error()) // escaped where it quotes the guest
	}
	if err != nil {
		// The error may quote the guest (a failed hook) and lists manifest problems one a line.
		fmt.Fprintf(stderr, "error: %s\n", logtext.EscapeBlock(err.Error()))
		var he *store.HookError
		if errors.As(err, &he) || errors.Is(err, store.ErrBusy) {
			return exitFailure
		}
		return exitUsage
	}
	for _, k := range answers.unused() {
		fmt.Fprintf(stderr, "warning: --set %s: the install hook did not ask for it\n", logtext.Escape(k))
	}
	id, meta := res.Manifest.ID(), res.Meta
	switch {
	case res.Previous == nil:
		fmt.Fprintf(stdout, "installed %s %s", id, meta.Version)
	default:
		fmt.Fprintf(stdout, "upgraded %s %s -> %s", id, logtext.Escape(res.Previous.Version), meta.Version)
	}
	fmt.Fprintf(stdout, " into %s (BLAKE3 %s)", logtext.Escape(res.Manifest.Dir), meta.WasmHash)
	if hook != "" {
		fmt.Fprintf(stdout, "; %s ran", hook)
	}
	fmt.Fprintln(stdout)
	if err := promptEnv(stdin, stdout, stderr, state, res.Manifest); err != nil {
		// The capsule is installed; its [env] values can be set later with astrid-host config.
		fmt.Fprintf(stderr, "warning: %s is installed, but its configuration was not saved: %s (set it with 'astrid-host config %s KEY=VALUE')\n", id, logtext.Escape(err.Error()), id)
	}
	return exitOK
}

func uninstallCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("uninstall", uninstallSynopsis, stderr)
	stateFlag := fs.String("state", "", "state directory whose store holds the capsule (default: as for run)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, fmt.Errorf("want one NAME, got %d argument(s)", len(pos)))
	}
	state, err := stateDirFlag(*stateFlag)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	meta, recovered, err := store.Uninstall(state, pos[0])
	printRecovered(stderr, recovered)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
		var ni *store.NotInstalledError
		if errors.As(err, &ni) || errors.Is(err, store.ErrBusy) {
			return exitFailure
		}
		return exitUsage
	}
	version := ""
	if meta != nil {
		version = " " + logtext.Escape(meta.Version)
	}
	fmt.Fprintf(stdout, "uninstalled %s%s\n", pos[0], version)
	return exitOK
}

func listCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("list", listSynopsis, stderr)
	stateFlag := fs.String("state", "", "state directory whose store to list (default: as for run)")
	asJSON := fs.Bool("json", false, "print a JSON array: name, version, source, wasm_hash, integrity (verified, modified, no_hash or error) and error")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, fmt.Errorf("list takes no arguments"))
	}
	state, err := stateDirFlag(*stateFlag)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	recovered, err := store.Recover(state)
	printRecovered(stderr, recovered)
	switch {
	case errors.Is(err, store.ErrBusy):
		// An install is under way: what it has in flight is its own, not a crash's leftover.
	case err != nil:
		fmt.Fprintf(stderr, "warning: %s\n", logtext.Escape(err.Error()))
	}
	all, err := store.List(state)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
		return exitFailure
	}
	rows := make([]listRow, 0, len(all))
	for _, in := range all {
		rows = append(rows, newListRow(in))
	}
	if *asJSON {
		return writeListJSON(stdout, stderr, rows)
	}
	writeListTable(stdout, rows)
	return exitOK
}

// stateDirFlag is --state, or the default state directory.
func stateDirFlag(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return defaultStateDir()
}

// printRecovered reports what the store's recovery did before a command.
func printRecovered(stderr io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintf(stderr, "note: %s\n", logtext.Escape(l))
	}
}
