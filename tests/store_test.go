package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/store"
)

func init() {
	// The capsule with astrid_install/astrid_upgrade hooks (see its main.go).
	builtCapsules["lifecycle"] = "tests/testdata/capsules/lifecycle"
}

// lifecycleVersion copies the built lifecycle capsule with package.version set to version and
// extra appended to its Capsule.toml.
func lifecycleVersion(t *testing.T, version, extra string) string {
	t.Helper()
	dir := capsuleVariant(t, "lifecycle", extra)
	path := filepath.Join(dir, "Capsule.toml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`version = "0.1.0"`), []byte(`version = "`+version+`"`), 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// treeSnapshot is every entry under dir: its mode, and a file's bytes.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[rel] += "\n" + string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// storeEntries lists STATE/capsules.
func storeEntries(t *testing.T, state string) []string {
	t.Helper()
	entries, err := os.ReadDir(store.Dir(state))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// callStore calls export of the installed capsule name through the CLI, from the store.
func callStore(t *testing.T, state, name, export string) cliResult {
	t.Helper()
	return runCLI(t, state, "call", "--sandbox", "best-effort", store.CapsuleDir(state, name), export)
}

// TestInstallUpgradeRollback: install runs astrid_install (input ""), the capsule runs from the
// store, an upgrade to a new version runs astrid_upgrade with the old version and keeps
// installed_at, and an upgrade whose hook fails or whose capsule does not load leaves the
// previous install byte for byte as it was, and runnable. A first install whose hook fails
// leaves nothing behind.
func TestInstallUpgradeRollback(t *testing.T) {
	state := t.TempDir()
	install := func(src string, extra ...string) cliResult {
		return runCLI(t, state, append(append([]string{"install", "--sandbox", "best-effort"}, extra...), src)...)
	}
	res := install(lifecycleVersion(t, "0.1.0", ""))
	if res.code != 0 || !strings.Contains(res.stdout, "installed lifecycle 0.1.0") || !strings.Contains(res.stdout, "astrid_install ran") {
		t.Fatalf("install v1: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if res := callStore(t, state, "lifecycle", "hooks"); res.code != 0 || res.stdout != ";install:" {
		t.Fatalf("hooks after install: exit %d, %q, stderr %s", res.code, res.stdout, res.stderr)
	}
	v1, err := store.ReadMeta(store.CapsuleDir(state, "lifecycle"))
	if err != nil {
		t.Fatal(err)
	}

	res = install(lifecycleVersion(t, "0.2.0", ""))
	if res.code != 0 || !strings.Contains(res.stdout, "upgraded lifecycle 0.1.0 -> 0.2.0") || !strings.Contains(res.stdout, "astrid_upgrade ran") {
		t.Fatalf("upgrade to v2: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if res := callStore(t, state, "lifecycle", "hooks"); res.code != 0 || res.stdout != ";install:;upgrade:0.1.0" {
		t.Fatalf("hooks after the upgrade: exit %d, %q, stderr %s", res.code, res.stdout, res.stderr)
	}
	v2, err := store.ReadMeta(store.CapsuleDir(state, "lifecycle"))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != "0.2.0" || v2.InstalledAt != v1.InstalledAt || v2.UpdatedAt == "" || v2.WasmHash != v1.WasmHash || len(v2.WasmHash) != 64 {
		t.Fatalf("meta.json after the upgrade: %+v (v1: %+v)", v2, v1)
	}

	// A module that is valid but traps in its start function: the capsule does not load.
	bad := filepath.Join(t.TempDir(), "lifecycle")
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(watModule(t, "trap", `(module (func $s unreachable) (start $s))`))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bad, "lifecycle.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(bad, "Capsule.toml"), []byte("[package]\nname = \"lifecycle\"\nversion = \"0.3.0\"\n\n[[component]]\nfile = \"lifecycle.wasm\"\n"), 0o644)

	for _, tc := range []struct {
		name, src, want string
	}{
		{"upgrade hook fails", lifecycleVersion(t, "0.3.0", "[env]\nfail_hook = { type = \"string\", default = \"yes\" }\n"), "upgrade hook refused: fail_hook is set"},
		{"capsule does not load", bad, "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := treeSnapshot(t, store.Dir(state))
			res := install(tc.src)
			if res.code != 1 || !strings.Contains(res.stderr, "upgrading lifecycle failed and was undone (version 0.2.0 is installed as before)") ||
				!strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			if after := treeSnapshot(t, store.Dir(state)); !maps.Equal(before, after) {
				t.Fatalf("the store changed:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
			}
			if res := callStore(t, state, "lifecycle", "hooks"); res.code != 0 || res.stdout != ";install:;upgrade:0.1.0" {
				t.Fatalf("the restored capsule: exit %d, %q, stderr %s", res.code, res.stdout, res.stderr)
			}
		})
	}

	t.Run("first install fails", func(t *testing.T) {
		state := t.TempDir()
		res := runCLI(t, state, "install", "--sandbox", "best-effort", lifecycleVersion(t, "0.1.0", "[env]\nfail_hook = { type = \"string\", default = \"yes\" }\n"))
		if res.code != 1 || !strings.Contains(res.stderr, "installing lifecycle failed and was undone (lifecycle is not installed)") || !strings.Contains(res.stderr, "install hook refused") {
			t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
		}
		if got := storeEntries(t, state); !slices.Equal(got, []string{store.LockName}) {
			t.Fatalf("the store holds %v, want only its lock", got)
		}
	})
}

// TestStoreIntegrityCLI: a store capsule whose module no longer matches meta.json, or whose
// meta.json has no hash, is refused with upstream's messages (by call, which loads it from the
// store), list says which, and uninstall removes it; a development capsule's load says it is
// unverified.
func TestStoreIntegrityCLI(t *testing.T) {
	state := t.TempDir()
	if res := runCLI(t, state, "install", "--sandbox", "best-effort", lifecycleVersion(t, "1.0.0", "")); res.code != 0 {
		t.Fatalf("install: exit %d, stderr %s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "install", "--sandbox", "best-effort", "--name", "bare", "--version", "2.0.0", filepath.Join(capsules["lifecycle"], "lifecycle.wasm")); res.code != 0 {
		t.Fatalf("install a bare .wasm: exit %d, stderr %s", res.code, res.stderr)
	}
	if res := callStore(t, state, "bare", "echo"); res.code != 0 {
		t.Fatalf("the bare .wasm from the store: exit %d, stderr %s", res.code, res.stderr)
	}
	dir := store.CapsuleDir(state, "lifecycle")
	meta, err := store.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendByte(t, filepath.Join(dir, "lifecycle.wasm"))
	res := callStore(t, state, "lifecycle", "echo")
	want := "WASM integrity check failed: expected BLAKE3 " + meta.WasmHash + ", got "
	if res.code != 2 || !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "The binary may have been tampered with.") {
		t.Fatalf("tampered module: exit %d, stderr %s", res.code, res.stderr)
	}
	res = runCLI(t, state, "list", "--json")
	var rows []struct{ Name, Version, Integrity string }
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil || res.code != 0 {
		t.Fatalf("list --json: exit %d, %v\n%s", res.code, err, res.stdout)
	}
	if fmt.Sprint(rows) != "[{bare 2.0.0 verified} {lifecycle 1.0.0 modified}]" {
		t.Fatalf("list: %v", rows)
	}

	meta.WasmHash = ""
	if err := store.WriteMeta(dir, meta); err != nil {
		t.Fatal(err)
	}
	res = callStore(t, state, "lifecycle", "echo")
	if res.code != 2 || !strings.Contains(res.stderr, "WASM capsule 'lifecycle' has no BLAKE3 hash in meta.json.") || !strings.Contains(res.stderr, "Refusing to load unverified binary.") {
		t.Fatalf("meta.json without a hash: exit %d, stderr %s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "list"); res.code != 0 || !strings.Contains(res.stdout, "NO HASH") {
		t.Fatalf("list: exit %d\n%s", res.code, res.stdout)
	}

	if res := runCLI(t, state, "uninstall", "lifecycle"); res.code != 0 || res.stdout != "uninstalled lifecycle 1.0.0\n" {
		t.Fatalf("uninstall: exit %d, %q, stderr %s", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, state, "uninstall", "lifecycle"); res.code != 1 || !strings.Contains(res.stderr, `capsule "lifecycle" is not installed; the installed capsules are: bare`) {
		t.Fatalf("uninstall again: exit %d, stderr %s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "uninstall", "bare"); res.code != 0 {
		t.Fatalf("uninstall bare: exit %d, stderr %s", res.code, res.stderr)
	}
	if res := runCLI(t, state, "list"); res.code != 0 || res.stdout != "no capsule is installed\n" {
		t.Fatalf("list of an empty store: exit %d, %q", res.code, res.stdout)
	}

	res = runCLI(t, state, "call", "--sandbox", "best-effort", "--log-level", "info", capsules["lifecycle"], "echo")
	if res.code != 0 || !strings.Contains(res.stderr, "unverified development capsule") {
		t.Fatalf("a development capsule's load does not say it is unverified: exit %d, stderr %s", res.code, res.stderr)
	}
}

// TestInstallCLIUsage: the commands' usage errors name what is wrong.
func TestInstallCLIUsage(t *testing.T) {
	wasm := filepath.Join(capsules["lifecycle"], "lifecycle.wasm")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"install help", []string{"install", "--help"}, 0, "Usage: astrid-host install"},
		{"uninstall help", []string{"uninstall", "--help"}, 0, "Usage: astrid-host uninstall"},
		{"list help", []string{"list", "--help"}, 0, "Usage: astrid-host list"},
		{"install without SRC", []string{"install"}, 2, "want one SRC"},
		{"bare wasm without a name", []string{"install", "--sandbox", "off", wasm}, 2, "a bare .wasm needs --name NAME"},
		{"bad name", []string{"install", "--sandbox", "off", "--name", "../x", wasm}, 2, `--name "../x" is not a valid capsule name`},
		{"bad version", []string{"install", "--sandbox", "off", "--name", "x", "--version", "1.0", wasm}, 2, `--version "1.0"`},
		{"name for a directory", []string{"install", "--sandbox", "off", "--name", "x", capsules["lifecycle"]}, 2, "--name and --version apply to a bare .wasm"},
		{"invalid manifest", []string{"install", "--sandbox", "off", t.TempDir()}, 2, "no Capsule.toml here"},
		{"uninstall a path", []string{"uninstall", "../kv"}, 2, `"../kv" is not a capsule name`},
		{"uninstall from an empty store", []string{"uninstall", "kv"}, 1, `capsule "kv" is not installed: no capsule is installed`},
		{"list arguments", []string{"list", "x"}, 2, "list takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			res := runCLI(t, state, tc.args...)
			if res.code != tc.code || !strings.Contains(res.stdout+res.stderr, tc.want) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", res.code, tc.code, res.stdout, res.stderr)
			}
			if tc.code != 0 && strings.HasPrefix(tc.args[0], "install") {
				if _, err := os.Stat(store.Dir(state)); err == nil {
					t.Fatalf("a refused install touched the store: %v", storeEntries(t, state))
				}
			}
		})
	}
}

// installInProcess installs src into state with an in-process host running its hook.
func installInProcess(t *testing.T, h *host.Host, state, src string) *store.Result {
	t.Helper()
	res, err := store.Install(state, src, store.Options{Hook: func(m *manifest.Manifest, meta, prev *store.Meta) error {
		_, err := h.RunLifecycle(context.Background(), m, meta, prev, 0)
		return err
	}})
	if err != nil {
		t.Fatalf("install %s: %v", src, err)
	}
	return res
}

// TestStoreIntegrity: loading a store capsule verifies its module against meta.json, whether
// the loader passes LoadOptions.Installed or names the store directory as a path; a changed or
// swapped module, or a meta.json without a hash, is refused with upstream's messages.
func TestStoreIntegrity(t *testing.T) {
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	other, err := os.ReadFile(filepath.Join(capsules["hello"], "hello.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	mismatch := "WASM integrity check failed: expected BLAKE3 "
	noHash := "has no BLAKE3 hash in meta.json. Capsules must be installed via `astrid-host install` which records the hash. Refusing to load unverified binary."
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		byPath bool // load by the store path with LoadOptions.Installed nil
		want   string
	}{
		{"unchanged", func(*testing.T, string) {}, false, ""},
		{"unchanged by path", func(*testing.T, string) {}, true, ""},
		{"appended byte", func(t *testing.T, dir string) { appendByte(t, filepath.Join(dir, "lifecycle.wasm")) }, false, mismatch},
		{"swapped module", func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "lifecycle.wasm"), other) }, false, mismatch},
		{"swapped module by path", func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "lifecycle.wasm"), other) }, true, mismatch},
		{"no hash", func(t *testing.T, dir string) { rewriteMeta(t, dir, func(m *store.Meta) { m.WasmHash = "" }) }, false, noHash},
		{"no meta.json by path", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, store.MetaName)) }, true, noHash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "integrity-" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), ".", "")
			src := capsuleVariant(t, "lifecycle", "")
			toml := filepath.Join(src, "Capsule.toml")
			data, _ := os.ReadFile(toml)
			writeFile(t, toml, bytes.Replace(data, []byte(`name = "lifecycle"`), []byte(`name = "`+name+`"`), 1))
			res := installInProcess(t, h, state, src)
			tc.change(t, res.Manifest.Dir)

			m, _, err := manifest.Load(res.Manifest.Dir)
			if err != nil {
				t.Fatal(err)
			}
			var opts host.LoadOptions
			if !tc.byPath {
				if opts.Installed, err = store.ReadMeta(res.Manifest.Dir); err != nil {
					t.Fatal(err)
				}
			}
			inst, _, err := h.Load(context.Background(), m, opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("load: %v", err)
			case tc.want == "":
				if out, err := inst.Call(context.Background(), "echo", []byte("ok"), 0); err != nil || string(out) != "ok" {
					t.Fatalf("echo: %q, %v", out, err)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("load: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestStoreRestartVerified: a store capsule that crashes is verified again when it restarts: a
// module changed meanwhile is refused, and the capsule stays Failed saying why.
func TestStoreRestartVerified(t *testing.T) {
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	res := installInProcess(t, h, state, capsuleVariant(t, "lifecycle", "[restart]\npolicy = \"on-failure\"\nmax_attempts = 1\nbackoff = \"10ms\"\nmax_backoff = \"10ms\"\n"))
	first, _, err := h.Load(context.Background(), res.Manifest, host.LoadOptions{Installed: res.Meta})
	if err != nil {
		t.Fatal(err)
	}
	appendByte(t, filepath.Join(res.Manifest.Dir, "lifecycle.wasm"))
	if err := syscall.Kill(first.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the restart to be refused", func() bool {
		next := current(h, "lifecycle")
		if next == nil || next == first {
			return false
		}
		st, reason := next.State()
		return st == host.StateFailed && strings.Contains(reason, "WASM integrity check failed")
	})
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rewriteMeta(t *testing.T, dir string, change func(*store.Meta)) {
	t.Helper()
	m, err := store.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	change(m)
	if err := store.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
}
