package host

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestRemoveRunDir: the runtime directory is gone after removeRunDir even while another
// goroutine keeps starting "shims" into it (socket directories with a socket file each), as a
// spare's refill can during a forced exit. os.RemoveAll alone leaves it behind: an entry made
// after it listed the directory fails its last rmdir.
func TestRemoveRunDir(t *testing.T) {
	cases := []struct {
		name    string
		starter bool // a goroutine starting shims into the directory meanwhile
	}{
		{"idle", false},
		{"while shims start into it", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, err := os.MkdirTemp(t.TempDir(), "astrid-run-")
			if err != nil {
				t.Fatal(err)
			}
			for range 50 {
				startInto(dir)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			started := make(chan struct{})
			if c.starter {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; ; n++ {
						if n == 100 {
							close(started)
						}
						select {
						case <-stop:
							return
						default:
							startInto(dir)
						}
					}
				}()
				<-started
			}
			err = removeRunDir(dir)
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatalf("removeRunDir: %v", err)
			}
			for _, p := range []string{dir, dir + ".removing"} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s after removeRunDir: %v; want it gone", p, err)
				}
			}
			if err := removeRunDir(dir); err != nil {
				t.Errorf("removeRunDir of a removed directory: %v, want nil", err)
			}
		})
	}
}

// startInto does what a shim's start does in the runtime directory: a socket directory
// (Host.startShim), then the shim's socket file in it. Either fails once dir is gone.
func startInto(dir string) {
	sock, err := os.MkdirTemp(dir, "shim-")
	if err != nil {
		return
	}
	if f, err := os.Create(filepath.Join(sock, "plugin")); err == nil {
		f.Close()
	}
}

// TestRunDirBase: the runtime directory goes where TMPDIR says when it is set, else in a
// shared-memory directory that is a tmpfs anyone may write (sticky) when one may be used, else
// in the system's temporary directory.
func TestRunDirBase(t *testing.T) {
	private := t.TempDir() // 0700: not a shared directory, whatever its filesystem
	shmIsTmpfs := runDirBase("", shmDir) == shmDir
	cases := []struct {
		name   string
		tmpdir string
		shm    string
		want   string
		skip   bool
	}{
		{"TMPDIR set", "/somewhere/else", shmDir, "/somewhere/else", false},
		{"no shared-memory directory", "", filepath.Join(private, "absent"), os.TempDir(), false},
		{"a directory that is not shared", "", private, os.TempDir(), false},
		{"the machine's tmpfs /dev/shm", "", shmDir, shmDir, !shmIsTmpfs},
		{"no shared memory for shims without a cgroup", "", "", os.TempDir(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip {
				t.Skipf("%s is not a shared tmpfs here", shmDir)
			}
			if got := runDirBase(c.tmpdir, c.shm); got != c.want {
				t.Errorf("runDirBase(%q, %q) = %q, want %q", c.tmpdir, c.shm, got, c.want)
			}
		})
	}
}
