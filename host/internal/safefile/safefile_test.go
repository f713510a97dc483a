package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileFiles makes, in a fresh directory, one file of each kind a capsule directory could hold
// instead of a regular file, and returns their paths by name.
func hostileFiles(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("small"), []byte("hello"), 0o644))
	must(os.Symlink(p("small"), p("link-to-small")))
	must(os.Symlink("/dev/zero", p("zero")))
	must(syscall.Mkfifo(p("fifo"), 0o644))
	must(os.Symlink(p("fifo"), p("link-to-fifo")))
	f, err := os.Create(p("huge"))
	must(err)
	must(f.Truncate(3 << 30)) // sparse: 3 GiB that take no disk
	must(f.Close())
	must(os.Mkdir(p("dir"), 0o755))
	must(os.Symlink(p("nowhere"), p("dangling")))
	must(os.Symlink(p("loop-b"), p("loop-a")))
	must(os.Symlink(p("loop-a"), p("loop-b")))
	return map[string]string{"small": p("small"), "link-to-small": p("link-to-small"), "zero": p("zero"),
		"fifo": p("fifo"), "link-to-fifo": p("link-to-fifo"), "huge": p("huge"), "dir": p("dir"),
		"dangling": p("dangling"), "loop": p("loop-a")}
}

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

func TestReadFile(t *testing.T) {
	files := hostileFiles(t)
	const limit = 1 << 20
	tests := []struct {
		name     string
		want     string // content, when the read succeeds
		wantIs   error
		wantText []string
	}{
		{"small", "hello", nil, nil},
		{"link-to-small", "hello", nil, nil},
		{"zero", "", ErrNotRegular, []string{files["zero"], "is a character device, not a regular file"}},
		{"fifo", "", ErrNotRegular, []string{files["fifo"], "is a named pipe (FIFO), not a regular file"}},
		{"link-to-fifo", "", ErrNotRegular, []string{"is a named pipe (FIFO)"}},
		{"huge", "", ErrTooLarge, []string{files["huge"], "is 3221225472 bytes; the limit is 1048576 bytes"}},
		{"dir", "", ErrNotRegular, []string{"is a directory, not a regular file"}},
		{"dangling", "", os.ErrNotExist, []string{"does not exist"}},
		{"loop", "", syscall.ELOOP, []string{"is a symlink loop"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				data []byte
				err  error
			}
			r := within(t, 10*time.Second, func() result {
				data, err := ReadFile(files[tc.name], limit)
				return result{data, err}
			})
			if tc.wantIs == nil {
				if r.err != nil || string(r.data) != tc.want {
					t.Fatalf("ReadFile = %q, %v; want %q", r.data, r.err, tc.want)
				}
				return
			}
			if !errors.Is(r.err, tc.wantIs) {
				t.Fatalf("ReadFile error %v; want one that is %v", r.err, tc.wantIs)
			}
			var serr *Error
			if !errors.As(r.err, &serr) {
				t.Fatalf("error %T is not a *safefile.Error", r.err)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("error %q lacks %q", r.err, want)
				}
			}
		})
	}
}
