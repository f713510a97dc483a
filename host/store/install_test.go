package store

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host/manifest"
)

// emptyModule is the smallest valid WebAssembly core module: its header.
var emptyModule = []byte("\x00asm\x01\x00\x00\x00")

// capsuleDir writes a capsule directory named name at version with the given module bytes and
// extra files (path -> content), and returns it.
func capsuleDir(t *testing.T, name, version string, module []byte, extra map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	must(t, os.MkdirAll(dir, 0o755))
	toml := "[package]\nname = \"" + name + "\"\nversion = \"" + version + "\"\n\n[[component]]\nfile = \"" + name + ".wasm\"\n\n[imports.astrid]\nsession = \"^1.0\"\n\n[exports.astrid]\nllm = \"1.2.0\"\n"
	must(t, os.WriteFile(filepath.Join(dir, ManifestName), []byte(toml), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, name+".wasm"), module, 0o644))
	for p, content := range extra {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tree is every entry under dir: its mode and a file's bytes (or a link's target).
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return out
	}
	must(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[rel] += " " + string(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			out[rel] += " -> " + target
		}
		return nil
	}))
	return out
}

// entries lists STATE/capsules.
func entries(t *testing.T, state string) []string {
	t.Helper()
	es, err := os.ReadDir(Dir(state))
	must(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

var errHook = errors.New("hook says no")

// TestInstallRollback: a failing hook puts the store back exactly as it was (the previous
// install byte for byte, meta.json included, or nothing on a first install), and the hook is
// told what it replaces.
func TestInstallRollback(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup installs what is there before (nil: nothing).
		setup    func(t *testing.T, state string)
		wantPrev string // the previous version the hook is given, "-" for none
		wantErr  string
	}{
		{"first install", nil, "-", "installing cap failed and was undone (cap is not installed): hook says no"},
		{"upgrade", func(t *testing.T, state string) {
			if _, err := Install(state, capsuleDir(t, "cap", "1.0.0", emptyModule, map[string]string{"data/a.txt": "a"}), Options{}); err != nil {
				t.Fatal(err)
			}
		}, "1.0.0", "upgrading cap failed and was undone (version 1.0.0 is installed as before): hook says no"},
		{"over a directory without meta.json", func(t *testing.T, state string) {
			dir := CapsuleDir(state, "cap")
			must(t, os.MkdirAll(dir, 0o755))
			must(t, os.WriteFile(filepath.Join(dir, ManifestName), []byte("hand-made"), 0o644))
		}, "-", "upgrading cap failed and was undone (the previous install is back): hook says no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, state)
			}
			before := tree(t, CapsuleDir(state, "cap"))
			var sawPrev string
			src := capsuleDir(t, "cap", "2.0.0", []byte("\x00asm\x01\x00\x00\x00\x00\x01x"), nil)
			_, err := Install(state, src, Options{Hook: func(m *manifest.Manifest, meta, prev *Meta) error {
				sawPrev = "-"
				if prev != nil {
					sawPrev = prev.Version
				}
				// The hook sees the new capsule in place.
				if got, _ := ReadMeta(CapsuleDir(state, "cap")); got == nil || got.Version != "2.0.0" || m.Dir != CapsuleDir(state, "cap") {
					t.Errorf("during the hook: meta %+v, dir %s", got, m.Dir)
				}
				return errHook
			}})
			var he *HookError
			if !errors.As(err, &he) || !errors.Is(err, errHook) || err.Error() != tc.wantErr {
				t.Fatalf("Install: %v, want %q", err, tc.wantErr)
			}
			if sawPrev != tc.wantPrev {
				t.Fatalf("the hook was given previous %q, want %q", sawPrev, tc.wantPrev)
			}
			if after := tree(t, CapsuleDir(state, "cap")); !maps.Equal(before, after) {
				t.Fatalf("the store changed:\nbefore %v\nafter  %v", before, after)
			}
			if got := entries(t, state); slices.ContainsFunc(got, func(n string) bool { return n != LockName && n != "cap" }) {
				t.Fatalf("leftovers in the store: %v", got)
			}
		})
	}
}

// TestInstallMeta: meta.json records the version, the source, [imports]/[exports] and the
// BLAKE3 of the module as copied; an upgrade keeps installed_at.
func TestInstallMeta(t *testing.T) {
	state := t.TempDir()
	module := append(append([]byte{}, emptyModule...), 0, 3, 'a', 'b', 'c') // a custom section
	src := capsuleDir(t, "cap", "1.0.0", module, map[string]string{"README": "hi", ".git/HEAD": "ref"})
	res, err := Install(state, src, Options{})
	must(t, err)
	m := res.Meta
	if m.Version != "1.0.0" || m.Source != src || m.WasmHash != Hash(module) || m.InstalledAt == "" || m.UpdatedAt != m.InstalledAt ||
		m.Imports["astrid"]["session"] != "^1.0" || m.Exports["astrid"]["llm"] != "1.2.0" || res.Previous != nil {
		t.Fatalf("meta: %+v", m)
	}
	onDisk, err := ReadMeta(CapsuleDir(state, "cap"))
	must(t, err)
	if onDisk.WasmHash != m.WasmHash {
		t.Fatalf("meta.json on disk: %+v", onDisk)
	}
	if _, err := os.Stat(filepath.Join(CapsuleDir(state, "cap"), ".git")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf(".git was copied: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(CapsuleDir(state, "cap"), "README")); string(data) != "hi" {
		t.Fatalf("README: %q", data)
	}

	m.InstalledAt = "2020-01-01T00:00:00Z" // as if installed long ago
	must(t, WriteMeta(CapsuleDir(state, "cap"), m))
	res, err = Install(state, capsuleDir(t, "cap", "1.1.0", emptyModule, nil), Options{})
	must(t, err)
	if res.Meta.InstalledAt != "2020-01-01T00:00:00Z" || res.Meta.Version != "1.1.0" || res.Previous.Version != "1.0.0" || res.Meta.WasmHash != Hash(emptyModule) {
		t.Fatalf("after the upgrade: %+v (previous %+v)", res.Meta, res.Previous)
	}
	if got := entries(t, state); !slices.Equal(got, []string{LockName, "cap"}) {
		t.Fatalf("store: %v", got)
	}
}

// TestInstallBareWasm: a .wasm gets a generated Capsule.toml with --name and --version.
func TestInstallBareWasm(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "Some_Tool.wasm")
	must(t, os.WriteFile(wasm, emptyModule, 0o644))
	for _, tc := range []struct {
		name          string
		opts          Options
		wantVersion   string
		wantErrSubstr string
	}{
		{"name and version", Options{Name: "tool", Version: "1.2.3"}, "1.2.3", ""},
		{"default version", Options{Name: "tool"}, DefaultWasmVersion, ""},
		{"no name", Options{}, "", "a bare .wasm needs --name NAME"},
		{"bad name", Options{Name: "Tool"}, "", `--name "Tool" is not a valid capsule name`},
		{"bad version", Options{Name: "tool", Version: "v1\n[capabilities]"}, "", `--version "v1\n[capabilities]"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			res, err := Install(state, wasm, tc.opts)
			if tc.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
					t.Fatalf("Install: %v, want %q", err, tc.wantErrSubstr)
				}
				if _, err := os.Stat(Dir(state)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatal("a refused install created the store")
				}
				return
			}
			must(t, err)
			m, _, err := manifest.Load(CapsuleDir(state, "tool"))
			must(t, err)
			if m.ID() != "tool" || m.Package.Version != tc.wantVersion || m.Components[0].File != "tool.wasm" || len(m.Capabilities.Net) != 0 ||
				res.Meta.WasmHash != Hash(emptyModule) || res.Meta.Source != wasm {
				t.Fatalf("installed: %+v, meta %+v", m, res.Meta)
			}
		})
	}
	t.Run("name for a directory", func(t *testing.T) {
		_, err := Install(t.TempDir(), capsuleDir(t, "cap", "1.0.0", emptyModule, nil), Options{Name: "x"})
		if err == nil || !strings.Contains(err.Error(), "--name and --version apply to a bare .wasm") {
			t.Fatalf("Install: %v", err)
		}
	})
}

// TestInstallRefusesBeforeTouchingTheStore: an invalid manifest is refused with its problems and
// no store is created.
func TestInstallRefusesBeforeTouchingTheStore(t *testing.T) {
	src := capsuleDir(t, "cap", "1.0", emptyModule, nil) // not strict semver
	state := t.TempDir()
	_, err := Install(state, src, Options{})
	var errs manifest.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "version") {
		t.Fatalf("Install: %v", err)
	}
	if _, err := os.Stat(Dir(state)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the store was created")
	}
}

// TestStoreBusy: a second install, uninstall or recovery while one holds the store's lock fails
// at once with ErrBusy and changes nothing.
func TestStoreBusy(t *testing.T) {
	state := t.TempDir()
	_, err := Install(state, capsuleDir(t, "cap", "1.0.0", emptyModule, nil), Options{})
	must(t, err)
	l, err := lockStore(state)
	must(t, err)
	defer l.unlock()
	before := tree(t, Dir(state))
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"install", func() error {
			_, err := Install(state, capsuleDir(t, "cap", "2.0.0", emptyModule, nil), Options{})
			return err
		}},
		{"uninstall", func() error { _, _, err := Uninstall(state, "cap"); return err }},
		{"recover", func() error { _, err := Recover(state); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "another astrid-host install, upgrade or uninstall") {
				t.Fatalf("%v, want ErrBusy", err)
			}
			if after := tree(t, Dir(state)); !maps.Equal(before, after) {
				t.Fatal("the store changed")
			}
		})
	}
}

// TestUninstall: uninstall removes an installed capsule, names the installed ones when asked for
// another, and refuses a name that is not a capsule name.
func TestUninstall(t *testing.T) {
	state := t.TempDir()
	for _, n := range []string{"a", "b"} {
		_, err := Install(state, capsuleDir(t, n, "1.0.0", emptyModule, nil), Options{})
		must(t, err)
	}
	for _, tc := range []struct {
		name, arg, wantErr string
	}{
		{"not installed", "c", `capsule "c" is not installed; the installed capsules are: a, b`},
		{"a path", "../a", `"../a" is not a capsule name`},
		{"a store entry", ".lock", `".lock" is not a capsule name`},
		{"installed", "a", ""},
		{"again", "a", `capsule "a" is not installed; the installed capsules are: b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta, _, err := Uninstall(state, tc.arg)
			if tc.wantErr == "" {
				if err != nil || meta == nil || meta.Version != "1.0.0" {
					t.Fatalf("Uninstall: %+v, %v", meta, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("Uninstall: %v, want %q", err, tc.wantErr)
			}
		})
	}
	if got := entries(t, state); !slices.Equal(got, []string{LockName, "b"}) {
		t.Fatalf("store: %v", got)
	}
	if _, _, err := Uninstall(t.TempDir(), "a"); err == nil || err.Error() != `capsule "a" is not installed: no capsule is installed` {
		t.Fatalf("Uninstall from no store: %v", err)
	}
}

// TestHolds: a store capsule directory is recognised by its path, through symlinks too; other
// directories and the store's own entries are not.
func TestHolds(t *testing.T) {
	state := t.TempDir()
	_, err := Install(state, capsuleDir(t, "cap", "1.0.0", emptyModule, nil), Options{})
	must(t, err)
	link := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(CapsuleDir(state, "cap"), link))
	must(t, os.Mkdir(filepath.Join(Dir(state), ".stage-x"), 0o755))
	for _, tc := range []struct {
		dir  string
		want bool
	}{
		{CapsuleDir(state, "cap"), true},
		{link, true},
		{filepath.Join(Dir(state), "cap", "."), true},
		{filepath.Join(Dir(state), ".stage-x"), false},
		{Dir(state), false},
		{t.TempDir(), false},
	} {
		if got := Holds(state, tc.dir); got != tc.want {
			t.Errorf("Holds(%s) = %v, want %v", tc.dir, got, tc.want)
		}
	}
}
