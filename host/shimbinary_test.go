package host

import (
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
