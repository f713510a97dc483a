package host

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestDiscoverCapsules(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mk := func(rel string, manifest bool) string {
		d := filepath.Join(root, rel)
		must(os.MkdirAll(d, 0o755))
		if manifest {
			must(os.WriteFile(filepath.Join(d, ManifestName), nil, 0o644))
		}
		return d
	}
	parent := mk("all", false)
	b := mk("all/b", true)
	a := mk("all/a", true)
	mk("all/not-a-capsule", false)
	single := mk("single", true)
	empty := mk("empty", false)

	// A directory of capsules linked in from elsewhere, and links that lead nowhere.
	elsewhere := mk("elsewhere/c", true)
	linked := mk("linked", false)
	must(os.Symlink(elsewhere, filepath.Join(linked, "c")))
	must(os.Symlink(filepath.Join(single, ManifestName), filepath.Join(linked, "file-link")))
	mixed := mk("mixed", false)
	must(os.Symlink(elsewhere, filepath.Join(mixed, "c")))
	must(os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(mixed, "dangling")))
	must(os.Symlink(filepath.Join(mixed, "loop-b"), filepath.Join(mixed, "loop-a")))
	must(os.Symlink(filepath.Join(mixed, "loop-a"), filepath.Join(mixed, "loop-b")))
	broken := mk("broken", false)
	must(os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(broken, "dangling")))
	// A capsule whose Capsule.toml is not a regular file is still a capsule: the manifest
	// loader, not discovery, says what is wrong with it.
	fifo := mk("fifo", false)
	must(syscall.Mkfifo(filepath.Join(fifo, ManifestName), 0o644))
	zero := mk("zero", false)
	must(os.Symlink("/dev/zero", filepath.Join(zero, ManifestName)))

	tests := []struct {
		name        string
		paths       []string
		want        []string
		wantSkipped []string
		wantErr     string
	}{
		{"capsule dir", []string{single}, []string{single}, nil, ""},
		{"manifest file", []string{filepath.Join(single, ManifestName)}, []string{single}, nil, ""},
		{"dir of capsules, sorted", []string{parent}, []string{a, b}, nil, ""},
		{"several paths in order", []string{single, parent}, []string{single, a, b}, nil, ""},
		{"dir without capsules", []string{empty}, nil, nil, "has no Capsule.toml, and neither has any directory in it"},
		{"missing", []string{filepath.Join(root, "nope")}, nil, nil, "no such file or directory"},
		{"symlinked capsule dir", []string{linked}, []string{filepath.Join(linked, "c")}, nil, ""},
		{"dangling and looping links are skipped, naming each", []string{mixed}, []string{filepath.Join(mixed, "c")},
			[]string{filepath.Join(mixed, "dangling") + " is a symlink to " + filepath.Join(root, "nowhere") + ", which does not exist",
				filepath.Join(mixed, "loop-a") + " is a symlink loop", filepath.Join(mixed, "loop-b") + " is a symlink loop"}, ""},
		{"only a dangling link", []string{broken}, nil, nil, "(skipped: " + filepath.Join(broken, "dangling") + " is a symlink to"},
		{"FIFO manifest", []string{fifo}, []string{fifo}, nil, ""},
		{"manifest linked to /dev/zero", []string{zero}, []string{zero}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped, err := DiscoverCapsules(tc.paths)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			if len(skipped) != len(tc.wantSkipped) {
				t.Fatalf("skipped %q; want %d notes", skipped, len(tc.wantSkipped))
			}
			for i, want := range tc.wantSkipped {
				if !strings.HasPrefix(skipped[i], want) {
					t.Errorf("skipped[%d] = %q; want it to start with %q", i, skipped[i], want)
				}
			}
		})
	}
}
