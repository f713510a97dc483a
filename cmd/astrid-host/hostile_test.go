package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileManifest: check and run refuse a Capsule.toml that is a symlink to /dev/zero, a FIFO
// or a 3 GiB (sparse) file at once, naming the file and what is wrong, instead of exhausting
// memory, hanging, or reading 3 GiB before the 1 MiB rule.
func TestHostileManifest(t *testing.T) {
	kinds := []struct {
		name string
		make func(path string) error
		want string
	}{
		{"symlink to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "is a character device, not a regular file"},
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "is a named pipe (FIFO), not a regular file"},
		{"3 GiB sparse file", func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(3 << 30)
		}, "is 3221225472 bytes; the limit is 1048576 bytes (1MiB)"},
	}
	for _, k := range kinds {
		dir := filepath.Join(t.TempDir(), "capsule")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		manifest := filepath.Join(dir, "Capsule.toml")
		if err := k.make(manifest); err != nil {
			t.Fatal(err)
		}
		commands := []struct {
			name     string
			args     []string
			wantCode int
		}{
			{"check dir", []string{"check", dir}, exitFailure},
			{"check file", []string{"check", manifest}, exitFailure},
			// /bin/true passes the shim checks; no shim starts, as no manifest loads.
			{"run", []string{"run", "--shim", "/bin/true", "--sandbox", "off", "--state", t.TempDir(), dir}, exitUsage},
		}
		for _, c := range commands {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				type result struct {
					code     int
					out, err string
				}
				// run points TMPDIR at its runtime directory, and removes that directory when it
				// ends; give each run its own.
				t.Setenv("TMPDIR", t.TempDir())
				done := make(chan result, 1)
				go func() {
					var out, errb strings.Builder
					code := run(c.args, nil, &out, &errb)
					done <- result{code, out.String(), errb.String()}
				}()
				var r result
				select {
				case r = <-done:
				case <-time.After(20 * time.Second):
					t.Fatalf("astrid-host %s still running after 20s; a hostile Capsule.toml must be refused at once", c.name)
				}
				if r.code != c.wantCode {
					t.Fatalf("exit %d, want %d\n%s%s", r.code, c.wantCode, r.out, r.err)
				}
				all := r.out + r.err
				if !strings.Contains(all, manifest) || !strings.Contains(all, k.want) {
					t.Fatalf("output does not name %s and say %q:\n%s", manifest, k.want, all)
				}
			})
		}
	}
}
