package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned within d: a read that blocks (a FIFO)
// or reads without end (/dev/zero) must be refused at once.
func within[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("still reading after %s; a hostile file must be refused at once", d)
		panic("unreachable")
	}
}

// hostile replaces the file at path with one a hostile capsule directory could hold.
var hostile = map[string]func(path string) error{
	"symlink to /dev/zero": func(path string) error { return os.Symlink("/dev/zero", path) },
	"FIFO":                 func(path string) error { return syscall.Mkfifo(path, 0o644) },
	"3 GiB sparse file": func(path string) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Truncate(3 << 30)
	},
	"dangling symlink": func(path string) error { return os.Symlink(path+".nowhere", path) },
}

// TestLoadHostileFiles: a Capsule.toml or .wasm that is /dev/zero, a FIFO or 3 GiB is refused at
// once, with a problem naming the file and what a valid one would be. Before the manifest was
// read through safefile, the first exhausted memory, the second hung and the third was read
// whole before the 1 MiB rule.
func TestLoadHostileFiles(t *testing.T) {
	tests := []struct {
		kind     string
		file     string // FileName or "demo.wasm"
		wantKey  string
		wantText string
	}{
		{"symlink to /dev/zero", FileName, "", "the manifest is a character device, not a regular file"},
		{"FIFO", FileName, "", "the manifest is a named pipe (FIFO), not a regular file"},
		{"3 GiB sparse file", FileName, "", "the manifest is 3221225472 bytes; the limit is 1048576 bytes (1MiB)"},
		{"dangling symlink", FileName, "", "the manifest is a symlink to "},
		{"symlink to /dev/zero", "demo.wasm", "component[0].file", "is a character device, not a regular file"},
		{"FIFO", "demo.wasm", "component[0].file", "is a named pipe (FIFO), not a regular file"},
		{"3 GiB sparse file", "demo.wasm", "component[0].file", "is 3221225472 bytes; the limit is 268435456 bytes (256MiB)"},
	}
	for _, tc := range tests {
		t.Run(tc.file+" "+tc.kind, func(t *testing.T) {
			dir := writeCapsule(t, base, map[string]string{"demo.wasm": coreModule})
			path := filepath.Join(dir, tc.file)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := hostile[tc.kind](path); err != nil {
				t.Fatal(err)
			}
			err := within(t, 10*time.Second, func() error { _, _, err := Load(dir); return err })
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %v; want problems", err)
			}
			for _, p := range errs {
				if p.Key == tc.wantKey && strings.Contains(p.String(), tc.wantText) && (tc.wantKey != "" || p.File == path) {
					return
				}
			}
			t.Fatalf("problems %v; want one at %q containing %q", errs, tc.wantKey, tc.wantText)
		})
	}
}

// TestForWasmHostileFiles: the bare .wasm of `astrid-host call` gets the same treatment.
func TestForWasmHostileFiles(t *testing.T) {
	for _, kind := range []string{"symlink to /dev/zero", "FIFO", "3 GiB sparse file"} {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.wasm")
			if err := hostile[kind](path); err != nil {
				t.Fatal(err)
			}
			err := within(t, 10*time.Second, func() error { _, err := ForWasm(path); return err })
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("ForWasm = %v; want a refusal naming %s", err, path)
			}
		})
	}
}
