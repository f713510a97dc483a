package host

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeShim(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), ShimName)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is filtered by the umask
		t.Fatal(err)
	}
	return p
}

func TestVerifyShim(t *testing.T) {
	good := writeShim(t, "shim v1", 0o755)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"regular executable", good, ""},
		{"writable by others", writeShim(t, "x", 0o757), "writable by group or others (mode -rwxr-xrwx); run `chmod go-w"},
		{"writable by group", writeShim(t, "x", 0o775), "writable by group or others"},
		{"not executable", writeShim(t, "x", 0o644), "not executable by its owner"},
		{"symlink", link, "is not a regular file"},
		{"missing", filepath.Join(t.TempDir(), "absent"), "no such file or directory (build it with `make`, or pass --shim PATH)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := VerifyShim(tc.path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(s.SHA256) != 64 {
					t.Fatalf("sha256 %q", s.SHA256)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestShimRecheck(t *testing.T) {
	p := writeShim(t, "shim v1", 0o755)
	s, err := VerifyShim(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Recheck(); err != nil {
		t.Fatalf("unchanged shim: %v", err)
	}
	// Rewriting the same bytes changes the file's times but not its hash: still accepted.
	if err := os.WriteFile(p, []byte("shim v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Recheck(); err != nil {
		t.Fatalf("same content rewritten: %v", err)
	}
	if err := os.WriteFile(p, []byte("shim v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Recheck(); err == nil || !strings.Contains(err.Error(), "changed since the host started") {
		t.Fatalf("modified shim: %v, want a refusal", err)
	}
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := s.Recheck(); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("shim made world-writable: %v, want a refusal", err)
	}
}

// TestVerifyShimCached: a host start takes the shim's hash from the module cache's digest index
// while the file is unchanged, and hashes it again (and only believes a sealed entry) otherwise.
func TestVerifyShimCached(t *testing.T) {
	sha := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	// remembered seals sum into the index as the shim's hash, as the host does for its own.
	remembered := func(t *testing.T, state, shim, sum string) {
		t.Helper()
		c, err := OpenModuleCache(ModuleCacheDir(state))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Digest(shim); err != nil { // writes the entry for the file as it is
			t.Fatal(err)
		}
		entries, _ := filepath.Glob(filepath.Join(c.Dir(), "digests", "*"))
		if len(entries) != 1 {
			t.Fatalf("digest entries: %v", entries)
		}
		lines := strings.Split(string(mustRead(t, entries[0])), "\n")
		abs, _ := filepath.Abs(shim)
		m := c.mac("digest", entries[0])
		m.Write([]byte(abs + "\x00" + lines[0] + "\x00" + sum))
		overwrite(t, entries[0], []byte(lines[0]+"\n"+sum+"\n"+hex.EncodeToString(m.Sum(nil))+"\n"))
	}
	other := strings.Repeat("c", 64)
	tests := []struct {
		name    string
		setup   func(t *testing.T, state, shim string) // after a first verification
		want    string
		wantErr string
	}{
		{"unchanged: the remembered hash, file not read", func(t *testing.T, state, shim string) {
			remembered(t, state, shim, other)
		}, other, ""},
		{"rewritten: hashed again", func(t *testing.T, state, shim string) {
			remembered(t, state, shim, other)
			// Another size too: a rewrite in the same clock tick keeps both times.
			if err := os.WriteFile(shim, []byte("shim v2, rebuilt"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, sha("shim v2, rebuilt"), ""},
		{"forged entry: not believed", func(t *testing.T, state, shim string) {
			entries, _ := filepath.Glob(filepath.Join(ModuleCacheDir(state), "digests", "*"))
			lines := strings.Split(string(mustRead(t, entries[0])), "\n")
			overwrite(t, entries[0], []byte(lines[0]+"\n"+other+"\n"+lines[2]+"\n"))
		}, sha("shim v1"), ""},
		{"made writable by others: refused despite the entry", func(t *testing.T, state, shim string) {
			if err := os.Chmod(shim, 0o757); err != nil {
				t.Fatal(err)
			}
		}, "", "writable by group or others"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shim, state := writeShim(t, "shim v1", 0o755), t.TempDir()
			first, err := VerifyShimCached(shim, state)
			if err != nil || first.SHA256 != sha("shim v1") {
				t.Fatalf("first verification: %+v, %v", first, err)
			}
			tc.setup(t, state, shim)
			s, err := VerifyShimCached(shim, state)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || s.SHA256 != tc.want {
				t.Fatalf("sha256 %v, %v; want %s", s, err, tc.want)
			}
			if err := s.Recheck(); err != nil {
				t.Fatalf("recheck: %v", err)
			}
		})
	}
}
