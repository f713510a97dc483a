package secretstore

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestSetGetDelete: secrets are kept per capsule, in a 0600 file in a 0700 directory, and Delete
// of the last one removes the file.
func TestSetGetDelete(t *testing.T) {
	state := t.TempDir()
	if err := Set(state, "a", map[string]string{"k": "v1", "j": "v2"}); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := Get(state, "a", "k"); err != nil || !ok || v != "v1" {
		t.Fatalf("Get a/k: %q %v %v", v, ok, err)
	}
	if ok, err := Exists(state, "b", "k"); err != nil || ok {
		t.Fatalf("b/k exists: %v %v", ok, err)
	}
	for path, want := range map[string]os.FileMode{Path(state, "a"): 0o600, Dir(state): 0o700} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if err := Delete(state, "a", "k", "j"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Path(state, "a")); !os.IsNotExist(err) {
		t.Fatalf("the empty file is still there: %v", err)
	}
}

// TestRefused: a name that leaves the directory, a bad key, a file that is too large or not a
// regular file (a FIFO would block a plain read) are refused, and no error shows a value.
func TestRefused(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"name with a slash", func() error { return Set(state, "../x", map[string]string{"k": "v"}) }, "is not a capsule name"},
		{"empty key", func() error { return Set(state, "a", map[string]string{"": "sk-value"}) }, "must not be empty"},
		{"long key", func() error {
			return Set(state, "a", map[string]string{strings.Repeat("k", MaxKeyBytes+1): "sk-value"})
		}, "the limit is 4096 bytes"},
		{"value not UTF-8", func() error { return Set(state, "a", map[string]string{"k": "sk-\xff"}) }, "not valid UTF-8"},
		{"file too large", func() error {
			if err := os.MkdirAll(Dir(state), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(Path(state, "big"), make([]byte, MaxFileBytes+1), 0o600); err != nil {
				return err
			}
			_, err := All(state, "big")
			return err
		}, "the limit is 1048576 bytes"},
		{"fifo", func() error {
			if err := syscall.Mkfifo(Path(state, "fifo"), 0o600); err != nil {
				return err
			}
			_, err := All(state, "fifo")
			return err
		}, "not a regular file"},
		{"not JSON", func() error {
			if err := os.WriteFile(Path(state, "bad"), []byte(`{"k": sk-value`), 0o600); err != nil {
				return err
			}
			_, err := All(state, "bad")
			return err
		}, "is not a JSON object of strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk-") {
				t.Fatalf("the error shows a value: %v", err)
			}
		})
	}
}
