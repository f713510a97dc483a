package host

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host/store"
)

// minimalWasm is the smallest core module: the header the manifest loader checks.
var minimalWasm = []byte("\x00asm\x01\x00\x00\x00")

// writeCapsule writes a capsule named name into dir/sub with a meta.json recording version, if
// version is not "" (meta "bad" writes a meta.json that is not JSON).
func writeCapsule(t *testing.T, dir, sub, name, meta string) string {
	t.Helper()
	d := filepath.Join(dir, sub)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("[package]\nname = %q\nversion = \"1.0.0\"\n\n[[component]]\nfile = \"m.wasm\"\n", name)
	if name == "" {
		toml = "[package]\nversion = 1\n" // invalid
	}
	files := map[string][]byte{"Capsule.toml": []byte(toml), "m.wasm": minimalWasm}
	switch meta {
	case "":
	case "bad":
		files[store.MetaName] = []byte("{not json")
	default:
		b, err := json.Marshal(store.Meta{Version: meta, WasmHash: store.Hash(minimalWasm)})
		if err != nil {
			t.Fatal(err)
		}
		files[store.MetaName] = b
	}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(d, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestDiscoverInstalled: run with no PATH finds the store's capsules, then the workspace's
// .astrid/capsules, each in name order; every one carries the meta.json it is verified against
// (an empty one when it cannot be read, so that its load is refused); the first capsule of a
// name wins and a later one is skipped with a warning naming both places; an invalid manifest is
// skipped with an error.
func TestDiscoverInstalled(t *testing.T) {
	state, ws := t.TempDir(), t.TempDir()
	storeDir := store.Dir(state)
	wsDir := filepath.Join(ws, WorkspaceCapsulesDir)
	sB := writeCapsule(t, storeDir, "b", "b", "2.0.0")
	sA := writeCapsule(t, storeDir, "a", "a", "1.0.0")
	sNoMeta := writeCapsule(t, storeDir, "c", "c", "")
	writeCapsule(t, storeDir, ".staging", "a", "9.9.9") // the store's own, not a capsule
	wA := writeCapsule(t, wsDir, "a", "a", "3.0.0")
	wD := writeCapsule(t, wsDir, "d", "d", "bad")
	wInvalid := writeCapsule(t, wsDir, "e", "", "1.0.0")
	wZ := writeCapsule(t, wsDir, "z-other-name", "b", "4.0.0")

	found, notes, err := DiscoverInstalled(state, ws)
	if err != nil {
		t.Fatal(err)
	}
	storePlace, wsPlace := "the store ("+storeDir+")", "the workspace ("+wsDir+")"
	want := []struct {
		dir, place, version string
	}{
		{sA, storePlace, "1.0.0"}, {sB, storePlace, "2.0.0"}, {sNoMeta, storePlace, ""},
		{wA, wsPlace, "3.0.0"}, {wD, wsPlace, ""}, {wInvalid, wsPlace, "1.0.0"}, {wZ, wsPlace, "4.0.0"},
	}
	if len(found) != len(want) {
		t.Fatalf("found %+v, want %d capsules", found, len(want))
	}
	for k, w := range want {
		t.Run(filepath.Base(filepath.Dir(w.dir))+"/"+filepath.Base(w.dir), func(t *testing.T) {
			f := found[k]
			if f.Dir != w.dir || f.Place != w.place || f.Installed == nil || f.Installed.Version != w.version {
				t.Errorf("found[%d] = %+v (meta %+v), want %s from %s, version %q", k, f, f.Installed, w.dir, w.place, w.version)
			}
			if w.version == "" && f.Installed.WasmHash != "" {
				t.Errorf("an unreadable meta.json gave a hash: %+v", f.Installed)
			}
		})
	}
	if len(notes) != 2 || !strings.HasPrefix(notes[0], sNoMeta+": cannot read its meta.json") || !strings.HasPrefix(notes[1], wD+": cannot read its meta.json") {
		t.Errorf("notes %q, want one for %s and one for %s", notes, sNoMeta, wD)
	}

	var logs bytes.Buffer
	caps := ReadCapsules(found, LoadOptions{RunLoop: true}, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}))
	var got []string
	for _, c := range caps {
		got = append(got, c.Manifest.ID()+"@"+c.Manifest.Dir)
		if !c.Options.RunLoop || c.Options.Installed == nil {
			t.Errorf("%s: options %+v, want RunLoop and its meta", c.Manifest.ID(), c.Options)
		}
	}
	if w := strings.Join([]string{"a@" + sA, "b@" + sB, "c@" + sNoMeta, "d@" + wD}, " "); strings.Join(got, " ") != w {
		t.Errorf("capsules %v\nwant %s", got, w)
	}
	for _, line := range []string{
		`capsule skipped: a capsule of this name was found first: capsule=a skipped=` + wA + ` skipped_from="` + wsPlace + `" loaded=` + sA + ` loaded_from="` + storePlace + `"`,
		`capsule skipped: a capsule of this name was found first: capsule=b skipped=` + wZ,
		`capsule skipped: invalid manifest: dir=` + wInvalid,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("the log lacks %q:\n%s", line, logs.String())
		}
	}
}

// TestDiscoverInstalledEmpty: neither the store nor the workspace's directory need exist.
func TestDiscoverInstalledEmpty(t *testing.T) {
	found, notes, err := DiscoverInstalled(filepath.Join(t.TempDir(), "absent"), t.TempDir())
	if err != nil || len(found) != 0 || len(notes) != 0 {
		t.Fatalf("DiscoverInstalled = %v, %v, %v; want nothing", found, notes, err)
	}
}

// TestDiscoverPaths: capsules given on the command line are development capsules, loaded
// unverified.
func TestDiscoverPaths(t *testing.T) {
	dir := writeCapsule(t, t.TempDir(), "x", "x", "1.0.0")
	found, _, err := DiscoverPaths([]string{dir})
	if err != nil || len(found) != 1 || found[0].Installed != nil || found[0].Place != "the command line" {
		t.Fatalf("DiscoverPaths = %+v, %v; want %s unverified", found, err, dir)
	}
	caps := ReadCapsules(found, LoadOptions{}, hclog.NewNullLogger())
	if len(caps) != 1 || caps[0].Options.Installed != nil {
		t.Fatalf("ReadCapsules = %+v; want x without a meta", caps)
	}
}

// TestDiscoverInstalledRecovers: an upgrade interrupted during its hook (the new version in
// place, the old one backed up, the journal still there) is rolled back before run looks at the
// store, so run loads the old version rather than one whose hook never finished.
func TestDiscoverInstalledRecovers(t *testing.T) {
	state, ws := t.TempDir(), t.TempDir()
	storeDir := store.Dir(state)
	writeCapsule(t, storeDir, ".backup-cap", "cap", "1.0.0")
	writeCapsule(t, storeDir, "cap", "cap", "2.0.0")
	if err := os.WriteFile(filepath.Join(storeDir, ".pending-cap"), []byte("upgrade"), 0o600); err != nil {
		t.Fatal(err)
	}
	found, notes, err := DiscoverInstalled(state, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Installed == nil || found[0].Installed.Version != "1.0.0" {
		t.Fatalf("found %+v, want cap at its old version 1.0.0 (notes %q)", found, notes)
	}
	if len(notes) == 0 || !strings.Contains(strings.Join(notes, "\n"), "recovered") {
		t.Errorf("notes %q do not say the store was recovered", notes)
	}
	if store.Pending(state, "cap") {
		t.Error("the journal is still there after discovery")
	}
}
