package store

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRecover: every state a crash can leave an install or uninstall in (see the steps at
// stagePrefix) is put right by the next Recover (and so by the next Install, Uninstall or list):
// an install that had not committed is rolled back to exactly what was there before, one that had
// keeps the new capsule, and staging, backup and trash directories are removed.
func TestRecover(t *testing.T) {
	// writeCapsule makes STATE/capsules/<entry> a capsule directory whose files say which one
	// it is.
	writeCapsule := func(t *testing.T, state, entry, which string) {
		dir := filepath.Join(Dir(state), entry)
		must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, ManifestName), []byte(which), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "sub", "f"), []byte(which+" file"), 0o644))
		must(t, WriteMeta(dir, &Meta{Version: which, WasmHash: Hash([]byte(which))}))
	}
	journal := func(t *testing.T, state, kind string) {
		must(t, os.WriteFile(journalPath(state, "cap"), []byte(kind), 0o600))
	}
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, state string) // the store as the crash left it
		want  string                           // which capsule is cap afterwards, "" for none
	}{
		{"during the copy of a first install", func(t *testing.T, state string) {
			writeCapsule(t, state, ".stage-cap", "new")
		}, ""},
		{"during the copy of an upgrade", func(t *testing.T, state string) {
			writeCapsule(t, state, "cap", "old")
			writeCapsule(t, state, ".stage-cap", "new")
		}, "old"},
		{"journal half written", func(t *testing.T, state string) {
			writeCapsule(t, state, "cap", "old")
			writeCapsule(t, state, ".stage-cap", "new")
			journal(t, state, "upg")
		}, "old"},
		{"before the swap of an upgrade", func(t *testing.T, state string) {
			writeCapsule(t, state, "cap", "old")
			writeCapsule(t, state, ".stage-cap", "new")
			journal(t, state, journalUpgrade)
		}, "old"},
		{"between the renames of an upgrade", func(t *testing.T, state string) {
			writeCapsule(t, state, ".backup-cap", "old")
			writeCapsule(t, state, ".stage-cap", "new")
			journal(t, state, journalUpgrade)
		}, "old"},
		{"during an upgrade's hook", func(t *testing.T, state string) {
			writeCapsule(t, state, ".backup-cap", "old")
			writeCapsule(t, state, "cap", "new")
			journal(t, state, journalUpgrade)
		}, "old"},
		{"during a rollback's removal", func(t *testing.T, state string) {
			writeCapsule(t, state, ".backup-cap", "old")
			writeCapsule(t, state, ".trash-cap-0123", "new")
			journal(t, state, journalUpgrade)
		}, "old"},
		{"during a first install's hook", func(t *testing.T, state string) {
			writeCapsule(t, state, "cap", "new")
			journal(t, state, journalInstall)
		}, ""},
		{"before the swap of a first install", func(t *testing.T, state string) {
			writeCapsule(t, state, ".stage-cap", "new")
			journal(t, state, journalInstall)
		}, ""},
		{"after the commit", func(t *testing.T, state string) {
			writeCapsule(t, state, ".backup-cap", "old")
			writeCapsule(t, state, "cap", "new")
		}, "new"},
		{"during an uninstall", func(t *testing.T, state string) {
			writeCapsule(t, state, ".trash-cap-89ab", "old")
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What the capsule directory looks like when it is "old" or "new", untouched.
			want := map[string]string{}
			if tc.want != "" {
				ref := t.TempDir()
				writeCapsule(t, ref, "cap", tc.want)
				want = tree(t, CapsuleDir(ref, "cap"))
			}
			state := t.TempDir()
			tc.crash(t, state)
			done, err := Recover(state)
			if err != nil || len(done) == 0 {
				t.Fatalf("Recover: %v, %v", done, err)
			}
			if got := tree(t, CapsuleDir(state, "cap")); !maps.Equal(got, want) {
				t.Fatalf("cap after recovery:\n got %v\nwant %v", got, want)
			}
			var wantEntries []string
			if tc.want != "" {
				wantEntries = []string{"cap"}
			}
			got := slices.DeleteFunc(entries(t, state), func(n string) bool { return n == LockName })
			if !slices.Equal(got, wantEntries) {
				t.Fatalf("store after recovery: %v, want %v", got, wantEntries)
			}
			if done, err := Recover(state); err != nil || len(done) != 0 {
				t.Fatalf("a second Recover did something: %v, %v", done, err)
			}
		})
	}
}

// TestInstallRecoversFirst: an install finishes what a crash left before it installs, and says
// so.
func TestInstallRecoversFirst(t *testing.T) {
	state := t.TempDir()
	_, err := Install(state, capsuleDir(t, "cap", "1.0.0", emptyModule, nil), Options{})
	must(t, err)
	// A crash during the hook of an upgrade of another capsule, other, left it half installed.
	must(t, os.MkdirAll(filepath.Join(Dir(state), "other"), 0o755))
	must(t, os.WriteFile(filepath.Join(Dir(state), "other", ManifestName), nil, 0o644))
	must(t, os.WriteFile(journalPath(state, "other"), []byte(journalInstall), 0o600))

	res, err := Install(state, capsuleDir(t, "cap", "1.0.1", emptyModule, nil), Options{})
	must(t, err)
	if len(res.Recovered) != 1 || !strings.Contains(res.Recovered[0], "rolled back an interrupted install of other") {
		t.Fatalf("Recovered: %q", res.Recovered)
	}
	if got := entries(t, state); !slices.Equal(got, []string{LockName, "cap"}) {
		t.Fatalf("store: %v", got)
	}
}
