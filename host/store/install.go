package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/astrid-go/astrid/host/internal/safefile"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared"
)

// DefaultWasmVersion is the package.version of a capsule installed from a bare .wasm without
// Options.Version.
const DefaultWasmVersion = "0.0.0"

// Options are the choices of one Install.
type Options struct {
	// Name and Version apply to a bare .wasm source only: the capsule gets a generated
	// Capsule.toml naming it Name (required) at Version (default DefaultWasmVersion), with the
	// module as its one component and no capability (see Install).
	Name, Version string
	// Hook runs the capsule's lifecycle hook once its new files are in place under
	// STATE/capsules/NAME and before the install commits: m is the installed manifest (its Dir is
	// the store's directory), meta its new meta.json, previous the meta.json of the install it
	// replaces (nil when there was none: a first install). An error rolls the store back to
	// exactly what it was. Nil runs no hook.
	Hook func(m *manifest.Manifest, meta *Meta, previous *Meta) error
}

// Result is what Install did.
type Result struct {
	// Manifest is the installed capsule's manifest, Dir = STATE/capsules/NAME.
	Manifest *manifest.Manifest
	// Meta is the meta.json written; Previous the one it replaced (nil on a first install).
	Meta, Previous *Meta
	// Warnings are the manifest's warnings (unknown keys, ...).
	Warnings []manifest.Problem
	// Recovered says what Recover did first (see Recover).
	Recovered []string
}

// HookError is Install's error when Options.Hook failed (the capsule did not load for its
// lifecycle hook, or the hook failed) and the store was rolled back.
type HookError struct {
	Name string
	// Restored is true when a previous install was put back (false: nothing was installed
	// before, and nothing is now); Previous is its version, "" when its meta.json did not say.
	Restored bool
	Previous string
	Err      error
}

func (e *HookError) Error() string {
	switch {
	case !e.Restored:
		return fmt.Sprintf("installing %s failed and was undone (%s is not installed): %v", e.Name, e.Name, e.Err)
	case e.Previous == "":
		return fmt.Sprintf("upgrading %s failed and was undone (the previous install is back): %v", e.Name, e.Err)
	}
	return fmt.Sprintf("upgrading %s failed and was undone (version %s is installed as before): %v", e.Name, e.Previous, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

// source is a validated install source, ready to be staged.
type source struct {
	path     string // absolute
	m        *manifest.Manifest
	warnings []manifest.Problem
	// wasmTOML is the generated Capsule.toml of a bare .wasm, nil for a capsule directory.
	wasmTOML []byte
}

// Install installs the capsule at src into the store STATE/capsules/NAME, NAME being its
// package.name:
//
//   - src is a capsule directory: its Capsule.toml is validated (manifest.Load) before the store
//     is touched, and its files are copied (see copier: regular files and directories only, no
//     symlink out of src, .git skipped, at most MaxInstallFiles entries and MaxInstallBytes
//     bytes, the module at most shared.MaxModuleBytes). opts.Name and opts.Version must be
//     empty: the manifest names the capsule.
//   - src is a .wasm file: opts.Name is required. The capsule gets a generated Capsule.toml:
//     package.name = opts.Name, package.version = opts.Version (DefaultWasmVersion if empty), one
//     component file = "NAME.wasm" (the module, copied under that name), and nothing else, so it
//     is granted no capability, like the default manifest `astrid-host call` gives a bare .wasm.
//
// meta.json records the version, installed_at (kept from the previous install), updated_at, the
// absolute source path, [imports]/[exports], and wasm_hash, the BLAKE3 of the module as copied
// into the store (read back from the staged copy: what is hashed is what was written).
//
// The install is atomic and survives a crash at any point (see the steps at stagePrefix): the
// new files are staged, swapped in with renames (the previous install kept as a backup), the
// hook runs, and only then the install commits. A failing hook puts back exactly the previous
// directory, or removes the new one on a first install, and returns a *HookError. Installs,
// upgrades and uninstalls of one store are serialised by a lock; one that finds it taken fails
// with ErrBusy.
func Install(stateDir, src string, opts Options) (*Result, error) {
	s, err := prepare(src, opts)
	if err != nil {
		return nil, err
	}
	name := s.m.ID()
	l, err := lockStore(stateDir)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	res := &Result{Warnings: s.warnings}
	if res.Recovered, err = recoverLocked(stateDir); err != nil {
		return res, err
	}

	stage := stageDir(stateDir, name)
	m, meta, err := s.stage(stage)
	if err != nil {
		os.RemoveAll(stage)
		return res, err
	}
	dir := CapsuleDir(stateDir, name)
	kind := journalInstall
	if _, err := os.Lstat(dir); err == nil {
		kind = journalUpgrade
	}
	// The previous install is an upgrade's starting point only when its meta.json says what it
	// was (as upstream: no meta.json, no previous version).
	prev, _ := ReadMeta(dir)
	if prev != nil && prev.InstalledAt != "" {
		meta.InstalledAt = prev.InstalledAt
	}
	if err := WriteMeta(stage, meta); err != nil {
		os.RemoveAll(stage)
		return res, err
	}

	if err := writeJournal(stateDir, name, kind); err != nil {
		os.RemoveAll(stage)
		return res, err
	}
	undo := func(cause error) error {
		if err := rollback(stateDir, name, kind); err != nil {
			return fmt.Errorf("%w; rolling back failed too (the next install, uninstall or list finishes it): %v", cause, err)
		}
		return cause
	}
	if kind == journalUpgrade {
		if err := os.Rename(dir, backupDir(stateDir, name)); err != nil {
			return res, undo(fmt.Errorf("move the previous install of %s aside: %w", name, err))
		}
	}
	if err := os.Rename(stage, dir); err != nil {
		return res, undo(fmt.Errorf("move %s into place: %w", name, err))
	}
	if err := syncDir(Dir(stateDir)); err != nil {
		return res, undo(err)
	}
	installed := *m
	installed.Dir = dir
	installed.Path = filepath.Join(dir, ManifestName)

	if opts.Hook != nil {
		if err := opts.Hook(&installed, meta, prev); err != nil {
			he := &HookError{Name: name, Err: err, Restored: kind == journalUpgrade}
			if prev != nil {
				he.Previous = prev.Version
			}
			return res, undo(he)
		}
	}
	if err := removeJournal(stateDir, name); err != nil {
		return res, undo(err)
	}
	// Committed. A backup left by a failure here is removed by the next Recover.
	_ = os.RemoveAll(backupDir(stateDir, name))
	res.Manifest, res.Meta, res.Previous = &installed, meta, prev
	return res, nil
}

// prepare validates src and opts without touching the store.
func prepare(src string, opts Options) (*source, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", src, err)
	}
	if fi.IsDir() {
		if opts.Name != "" || opts.Version != "" {
			return nil, fmt.Errorf("install %s: --name and --version apply to a bare .wasm; a capsule directory is named by its Capsule.toml's package.name and package.version", src)
		}
		m, warnings, err := manifest.Load(abs)
		if err != nil {
			return nil, err
		}
		return &source{path: abs, m: m, warnings: warnings}, nil
	}
	if !strings.HasSuffix(abs, ".wasm") {
		return nil, fmt.Errorf("install %s: want a capsule directory (with a Capsule.toml) or a .wasm file", src)
	}
	if opts.Name == "" {
		return nil, fmt.Errorf("install %s: a bare .wasm needs --name NAME, the capsule's name in the store (lowercase letters, digits and '-', e.g. my-capsule)", src)
	}
	if !manifest.ValidID(opts.Name) {
		return nil, fmt.Errorf("install %s: --name %q is not a valid capsule name: use only lowercase letters, digits and '-' (e.g. my-capsule)", src, opts.Name)
	}
	version := opts.Version
	if version == "" {
		version = DefaultWasmVersion
	}
	if _, err := manifest.ForWasm(abs); err != nil { // checks the module like Load does
		return nil, err
	}
	toml := []byte(fmt.Sprintf("# Generated by astrid-host install from a bare .wasm: a capsule with no capability.\n\n"+
		"[package]\nname = %s\nversion = %s\n\n[[component]]\nid = %s\nfile = %s\n",
		strconv.Quote(opts.Name), strconv.Quote(version), strconv.Quote(opts.Name), strconv.Quote(opts.Name+".wasm")))
	m, warnings, err := manifest.Parse("", toml)
	if err != nil {
		return nil, fmt.Errorf("install %s: --version %q: %w", src, version, err)
	}
	return &source{path: abs, m: m, warnings: warnings, wasmTOML: toml}, nil
}

// stage copies the source into stage and returns the staged capsule's manifest (read back from
// the copy: what is installed is what was validated, even if the source changed meanwhile) and
// its meta.json but for installed_at.
func (s *source) stage(stage string) (*manifest.Manifest, *Meta, error) {
	if err := os.RemoveAll(stage); err != nil {
		return nil, nil, err
	}
	if s.wasmTOML == nil {
		if err := copyTree(s.path, stage, s.m.Components[0].File, defaultLimits); err != nil {
			return nil, nil, fmt.Errorf("install %s: %w", s.path, err)
		}
	} else if err := s.stageWasm(stage); err != nil {
		return nil, nil, fmt.Errorf("install %s: %w", s.path, err)
	}
	m, _, err := manifest.Load(stage)
	if err != nil {
		return nil, nil, fmt.Errorf("install %s: the copy does not load: %w", s.path, err)
	}
	if m.ID() != s.m.ID() {
		return nil, nil, fmt.Errorf("install %s: its Capsule.toml changed while it was being installed (package.name %q, then %q); try again", s.path, s.m.ID(), m.ID())
	}
	wasm, err := safefile.ReadFile(m.WasmPath(), shared.MaxModuleBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("install %s: read the copied module: %w", s.path, err)
	}
	now := Now()
	meta := &Meta{
		Version:     m.Package.Version,
		InstalledAt: now,
		UpdatedAt:   now,
		Source:      s.path,
		Imports:     versionMap(m.Imports, func(d manifest.ImportDef) string { return d.Version }),
		Exports:     versionMap(m.Exports, func(d manifest.ExportDef) string { return d.Version }),
		WasmHash:    Hash(wasm),
	}
	return m, meta, nil
}

// stageWasm writes the generated Capsule.toml and copies the module as NAME.wasm into stage.
func (s *source) stageWasm(stage string) error {
	if err := os.Mkdir(stage, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, ManifestName), s.wasmTOML, 0o644); err != nil {
		return err
	}
	// The operator named this file: follow a symlink to it.
	real, err := filepath.EvalSymlinks(s.path)
	if err != nil {
		return err
	}
	file := s.m.Components[0].File
	c := &copier{root: filepath.Dir(real), module: file, lim: defaultLimits}
	if err := c.file(real, filepath.Join(stage, file), file, 0); err != nil {
		return err
	}
	return syncFS(stage)
}

// versionMap turns [imports] or [exports] into meta.json's namespace -> interface -> version.
func versionMap[T any](in map[string]map[string]T, version func(T) string) map[string]map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]map[string]string, len(in))
	for ns, ifaces := range in {
		out[ns] = make(map[string]string, len(ifaces))
		for name, d := range ifaces {
			out[ns][name] = version(d)
		}
	}
	return out
}

// NotInstalledError is Uninstall's error for a name the store does not hold.
type NotInstalledError struct {
	Name      string
	Installed []string // the names the store holds
}

func (e *NotInstalledError) Error() string {
	if len(e.Installed) == 0 {
		return fmt.Sprintf("capsule %q is not installed: no capsule is installed", e.Name)
	}
	return fmt.Sprintf("capsule %q is not installed; the installed capsules are: %s", e.Name, strings.Join(e.Installed, ", "))
}

// Uninstall removes the installed capsule name from the store and returns its meta.json (nil if
// it had none). It takes the store's lock (ErrBusy if another install holds it), recovers what a
// crash left first, and removes the directory at once from the store's view (a rename) before
// deleting its files. The capsule's saved configuration and KV data are kept.
func Uninstall(stateDir, name string) (*Meta, []string, error) {
	if !manifest.ValidID(name) {
		return nil, nil, fmt.Errorf("%q is not a capsule name: installed capsules are named by their package.name (lowercase letters, digits and '-')", name)
	}
	if _, err := os.Stat(Dir(stateDir)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, &NotInstalledError{Name: name}
	}
	l, err := lockStore(stateDir)
	if err != nil {
		return nil, nil, err
	}
	defer l.unlock()
	recovered, err := recoverLocked(stateDir)
	if err != nil {
		return nil, recovered, err
	}
	dir := CapsuleDir(stateDir, name)
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		all, lerr := List(stateDir)
		if lerr != nil {
			return nil, recovered, lerr
		}
		var names []string
		for _, in := range all {
			names = append(names, in.Name)
		}
		sort.Strings(names)
		return nil, recovered, &NotInstalledError{Name: name, Installed: names}
	}
	meta, _ := ReadMeta(dir)
	if err := discard(stateDir, dir); err != nil {
		return nil, recovered, err
	}
	return meta, recovered, nil
}
