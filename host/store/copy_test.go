package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/astrid-go/astrid/shared"
)

// TestCopySymlinks: install copies regular files and directories; a symlink only when it leads to
// a regular file inside the capsule (copied as a file), and refuses one that leads out of the
// capsule, nowhere or to a directory, and every other kind of file, naming it.
func TestCopySymlinks(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "id_ed25519")
	must(t, os.WriteFile(secret, []byte("PRIVATE KEY"), 0o600))
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T, src string)
		wantErr string // "" to succeed
		check   func(t *testing.T, dst string)
	}{
		{"link to a file inside", func(t *testing.T, src string) {
			must(t, os.Symlink("data/real.txt", filepath.Join(src, "alias.txt")))
		}, "", func(t *testing.T, dst string) {
			fi, err := os.Lstat(filepath.Join(dst, "alias.txt"))
			data, _ := os.ReadFile(filepath.Join(dst, "alias.txt"))
			if err != nil || !fi.Mode().IsRegular() || string(data) != "real" {
				t.Fatalf("alias.txt: %v, %v, %q", fi, err, data)
			}
		}},
		{"link out of the capsule", func(t *testing.T, src string) {
			must(t, os.Symlink(secret, filepath.Join(src, "data", "key")))
		}, "is a symlink to " + secret + ", outside the capsule directory", nil},
		{"relative link out of the capsule", func(t *testing.T, src string) {
			rel, err := filepath.Rel(src, secret)
			must(t, err)
			must(t, os.Symlink(rel, filepath.Join(src, "key")))
		}, "outside the capsule directory", nil},
		{"dangling link", func(t *testing.T, src string) {
			must(t, os.Symlink("nowhere", filepath.Join(src, "gone")))
		}, "is a symlink to nowhere, which does not exist", nil},
		{"link to a directory inside", func(t *testing.T, src string) {
			must(t, os.Symlink("data", filepath.Join(src, "loop")))
		}, "which is a directory: install follows a symlink only to a regular file inside the capsule", nil},
		{"the store inside the source", func(t *testing.T, src string) {}, "contains the capsule store", nil},
		{"fifo", func(t *testing.T, src string) {
			must(t, syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644))
		}, "pipe is a named pipe (FIFO): install copies only regular files and directories", nil},
		{"the module as a link inside", func(t *testing.T, src string) {
			must(t, os.Rename(filepath.Join(src, "cap.wasm"), filepath.Join(src, "data", "cap.wasm")))
			must(t, os.Symlink("data/cap.wasm", filepath.Join(src, "cap.wasm")))
		}, "", func(t *testing.T, dst string) {
			if data, _ := os.ReadFile(filepath.Join(dst, "cap.wasm")); string(data) != string(emptyModule) {
				t.Fatalf("cap.wasm: %q", data)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := capsuleDir(t, "cap", "1.0.0", emptyModule, map[string]string{"data/real.txt": "real"})
			tc.make(t, src)
			state := t.TempDir()
			if tc.name == "the store inside the source" {
				state = filepath.Join(src, "data", "state")
			}
			_, err := Install(state, src, Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Install: %v, want %q", err, tc.wantErr)
				}
				if got := entries(t, state); len(got) != 1 || got[0] != LockName {
					t.Fatalf("a refused copy left %v", got)
				}
				return
			}
			must(t, err)
			tc.check(t, CapsuleDir(state, "cap"))
		})
	}
}

// TestCopyLimits: the number of entries, the bytes in all and the module's bytes are bounded,
// each at its documented limit, and a file over a limit is refused from its size before it is
// read (the sparse files here would take minutes to read).
func TestCopyLimits(t *testing.T) {
	sparse := func(t *testing.T, path string, size int64) {
		f, err := os.Create(path)
		must(t, err)
		must(t, f.Truncate(size))
		must(t, f.Close())
	}
	for _, tc := range []struct {
		name    string
		lim     copyLimits
		make    func(t *testing.T, src string)
		wantErr string
	}{
		{"files at the limit", copyLimits{files: 5, bytes: 1 << 20, moduleBytes: 1 << 20}, func(t *testing.T, src string) {
			must(t, os.WriteFile(filepath.Join(src, "c"), nil, 0o644)) // Capsule.toml, cap.wasm, a, b, c
		}, ""},
		{"files over the limit", copyLimits{files: 5, bytes: 1 << 20, moduleBytes: 1 << 20}, func(t *testing.T, src string) {
			must(t, os.WriteFile(filepath.Join(src, "c"), nil, 0o644))
			must(t, os.WriteFile(filepath.Join(src, "d"), nil, 0o644))
		}, "has more than 5 files and directories, the most install copies"},
		{"directories count", copyLimits{files: 5, bytes: 1 << 20, moduleBytes: 1 << 20}, func(t *testing.T, src string) {
			must(t, os.MkdirAll(filepath.Join(src, "x", "y"), 0o755))
		}, "has more than 5 files and directories"},
		{"bytes over the limit", copyLimits{files: 100, bytes: 1000, moduleBytes: 1000}, func(t *testing.T, src string) {
			must(t, os.WriteFile(filepath.Join(src, "c"), make([]byte, 1000), 0o644))
		}, "does not fit in the 1000 bytes (1000 bytes) install copies of a capsule in all"},
		{"module over its limit", copyLimits{files: 100, bytes: 1 << 20, moduleBytes: 8}, func(t *testing.T, src string) {
			must(t, os.WriteFile(filepath.Join(src, "cap.wasm"), append(emptyModule, 0), 0o644))
		}, "cap.wasm (9 bytes) does not fit in the 8 bytes (8 bytes) a module may have"},
		{"documented total", defaultLimits, func(t *testing.T, src string) {
			sparse(t, filepath.Join(src, "huge.bin"), MaxInstallBytes+1)
		}, fmt.Sprintf("huge.bin (%d bytes) does not fit in the %d bytes (512 MiB) install copies", MaxInstallBytes+1, MaxInstallBytes)},
		{"documented module limit", defaultLimits, func(t *testing.T, src string) {
			sparse(t, filepath.Join(src, "cap.wasm"), shared.MaxModuleBytes+1)
		}, fmt.Sprintf("cap.wasm (%d bytes) does not fit in the %d bytes (256 MiB) a module may have", shared.MaxModuleBytes+1, shared.MaxModuleBytes)},
		{"documented file count", defaultLimits, func(t *testing.T, src string) {
			for i := range MaxInstallFiles - 1 { // with Capsule.toml, cap.wasm, a, b: one too many
				must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("f%05d", i)), nil, 0o644))
			}
		}, "has more than 10000 files and directories"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := capsuleDir(t, "cap", "1.0.0", emptyModule, map[string]string{"a": "a", "b": "b"})
			tc.make(t, src)
			dst := filepath.Join(t.TempDir(), "stage")
			err := copyTree(src, dst, "cap.wasm", tc.lim)
			if tc.wantErr == "" {
				must(t, err)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("copyTree: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
