package host

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const testShimSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestModuleCacheOpen: Open hands out exactly what Store wrote, and refuses (and deletes) every
// file it did not write under that name.
func TestModuleCacheOpen(t *testing.T) {
	art := bytes.Repeat([]byte("native code "), 1000)
	tests := []struct {
		name   string
		tamper func(t *testing.T, c *ModuleCache, path, other string)
		want   string // "" for a good artefact
	}{
		{"as stored", func(*testing.T, *ModuleCache, string, string) {}, ""},
		{"a byte changed", func(t *testing.T, _ *ModuleCache, path, _ string) {
			data := mustRead(t, path)
			data[10] ^= 1
			overwrite(t, path, data)
		}, "tag does not match"},
		{"another name's artefact", func(t *testing.T, _ *ModuleCache, path, other string) {
			overwrite(t, path, mustRead(t, other))
		}, "tag does not match"},
		{"truncated below a tag", func(t *testing.T, _ *ModuleCache, path, _ string) {
			overwrite(t, path, []byte("short"))
		}, "too short"},
		{"bytes appended", func(t *testing.T, _ *ModuleCache, path, _ string) {
			overwrite(t, path, append(mustRead(t, path), 0))
		}, "tag does not match"},
		{"stored under another key", func(t *testing.T, _ *ModuleCache, path, _ string) {
			other, err := OpenModuleCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Store(path, art); err != nil {
				t.Fatal(err)
			}
		}, "tag does not match"},
		{"a symbolic link", func(t *testing.T, _ *ModuleCache, path, other string) {
			os.Remove(path)
			if err := os.Symlink(other, path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"a FIFO", func(t *testing.T, _ *ModuleCache, path, _ string) {
			os.Remove(path)
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"larger than any artefact", func(t *testing.T, _ *ModuleCache, path, _ string) {
			os.Remove(path)
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, MaxArtefactBytes+tagBytes+1); err != nil {
				t.Fatal(err)
			}
		}, "no artefact is larger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := OpenModuleCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			path := c.Path(strings.Repeat("a", 64), testShimSHA, false)
			other := c.Path(strings.Repeat("b", 64), testShimSHA, false)
			if err := c.Store(path, art); err != nil {
				t.Fatal(err)
			}
			if err := c.Store(other, []byte("other code")); err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, c, path, other)
			f, err := c.Open(path)
			if tc.want == "" {
				if err != nil || f == nil {
					t.Fatalf("Open: %v, %v", f, err)
				}
				defer f.Close()
				if got, _ := io.ReadAll(f); !bytes.Equal(got, art) {
					t.Fatalf("Open gave %d bytes, not the %d stored", len(got), len(art))
				}
				return
			}
			if f != nil || !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, %v; want ErrTampered saying %q", f, err, tc.want)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the tampered file is still there: %v", err)
			}
		})
	}
}

// TestModuleCacheOpenSealed: what Open hands a shim cannot be changed by anyone afterwards, and
// changing the file after Open does not reach it.
func TestModuleCacheOpenSealed(t *testing.T) {
	c, err := OpenModuleCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := c.Path(strings.Repeat("a", 64), testShimSHA, true)
	art := []byte("genuine native code")
	if err := c.Store(path, art); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(path)
	if err != nil || f == nil {
		t.Fatalf("Open: %v, %v", f, err)
	}
	defer f.Close()
	overwrite(t, path, []byte("substituted code and a tag of 32 bytes........"))
	// Another descriptor of the same memfd, as the shim has it, opened for writing.
	w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("X"), 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("writing the sealed memfd: %v, want EPERM", err)
	}
	if err := w.Truncate(1); !errors.Is(err, syscall.EPERM) {
		t.Errorf("shrinking the sealed memfd: %v, want EPERM", err)
	}
	if _, err := unix.Mmap(int(w.Fd()), 0, len(art), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); !errors.Is(err, syscall.EPERM) {
		t.Errorf("mapping the sealed memfd writable: %v, want EPERM", err)
	}
	if got, _ := io.ReadAll(f); !bytes.Equal(got, art) {
		t.Fatalf("the memfd holds %q, want %q", got, art)
	}
}

// TestModuleCacheKey: the key is made once and kept; one that is not a key is replaced, which
// invalidates every artefact sealed under the old one.
func TestModuleCacheKey(t *testing.T) {
	dir := t.TempDir()
	c1, err := OpenModuleCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != keyBytes {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	c2, err := OpenModuleCache(dir)
	if err != nil || !bytes.Equal(c1.key, c2.key) {
		t.Fatalf("a second open made another key: %v", err)
	}
	path := c1.Path(strings.Repeat("a", 64), testShimSHA, false)
	if err := c1.Store(path, []byte("code")); err != nil {
		t.Fatal(err)
	}
	overwrite(t, filepath.Join(dir, keyFile), []byte("not a key"))
	c3, err := OpenModuleCache(dir)
	if err != nil || bytes.Equal(c3.key, c1.key) || len(c3.key) != keyBytes {
		t.Fatalf("a bad key file was not replaced: %v", err)
	}
	if f, err := c3.Open(path); f != nil || !errors.Is(err, ErrTampered) {
		t.Fatalf("an artefact sealed under the old key: %v, %v", f, err)
	}
}

// TestModuleCacheDigestForged: a remembered digest whose tag does not match is not believed.
func TestModuleCacheDigestForged(t *testing.T) {
	c, err := OpenModuleCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(module, []byte("\x00asm module"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := c.Digest(module)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(c.Dir(), "digests", "*"))
	if len(entries) != 1 {
		t.Fatalf("digest entries: %v", entries)
	}
	lines := strings.Split(string(mustRead(t, entries[0])), "\n")
	forged := strings.Repeat("b", 64)
	for name, entry := range map[string]string{
		"no tag":        lines[0] + "\n" + forged + "\n",
		"another's tag": lines[0] + "\n" + forged + "\n" + lines[2] + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			overwrite(t, entries[0], []byte(entry))
			if got, err := c.Digest(module); err != nil || got != sum {
				t.Fatalf("Digest = %s, %v; want %s", got, err, sum)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// overwrite replaces a file as someone with write access to its directory would.
func overwrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestModuleCacheOpenShared: every Open of an unchanged artefact hands out the same sealed
// memfd (its pages are in memory once for every shim that maps them), each descriptor with its
// own offset; an artefact tampered with after it was first opened never reaches a shim with
// other bytes than those stored, and one removed is forgotten.
func TestModuleCacheOpenShared(t *testing.T) {
	art := bytes.Repeat([]byte("shared native code "), 1000)
	inode := func(t *testing.T, f *os.File) uint64 {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	tests := []struct {
		name   string
		change func(t *testing.T, c *ModuleCache, path string)
		same   bool // the second Open gives the first one's memfd
	}{
		{"unchanged", func(*testing.T, *ModuleCache, string) {}, true},
		{"a byte changed", func(t *testing.T, _ *ModuleCache, path string) {
			data := mustRead(t, path)
			data[10] ^= 1
			overwrite(t, path, data)
		}, false},
		{"stored again", func(t *testing.T, c *ModuleCache, path string) {
			if err := c.Store(path, art); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"removed", func(t *testing.T, c *ModuleCache, path string) {
			if err := c.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := OpenModuleCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			path := c.Path(strings.Repeat("a", 64), testShimSHA, false)
			if err := c.Store(path, art); err != nil {
				t.Fatal(err)
			}
			first, err := c.Open(path)
			if err != nil || first == nil {
				t.Fatalf("first Open: %v, %v", first, err)
			}
			defer first.Close()
			if got, _ := io.ReadAll(first); !bytes.Equal(got, art) {
				t.Fatalf("first Open gave %d bytes, not the %d stored", len(got), len(art))
			}
			tc.change(t, c, path)
			second, err := c.Open(path)
			if second == nil {
				if err != nil && !errors.Is(err, ErrTampered) {
					t.Fatalf("second Open: %v", err)
				}
				return // refused (tampered) or gone (removed): nothing reaches a shim
			}
			defer second.Close()
			if got, _ := io.ReadAll(second); !bytes.Equal(got, art) {
				t.Fatalf("second Open gave %d other bytes", len(got))
			}
			if same := inode(t, first) == inode(t, second); same != tc.same {
				t.Fatalf("second Open shares the first one's memfd: %v, want %v", same, tc.same)
			}
		})
	}
}
