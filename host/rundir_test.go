package host

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

// TestSweepRunDirs: a new host removes the runtime directories of hosts that are gone (their lock
// can be taken), and nothing else: not a running host's, not one changed within staleRunDirAge,
// not a directory without a lock file, not a symlink or another name.
func TestSweepRunDirs(t *testing.T) {
	base := t.TempDir()
	old := time.Now().Add(-2 * staleRunDirAge)
	mkRunDir := func(name string, locked bool) (string, *os.File) {
		t.Helper()
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		startInto(dir)
		lock, err := lockRunDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !locked {
			lock.Close() // its host is gone
			lock = nil
		} else {
			t.Cleanup(func() { lock.Close() })
		}
		return dir, lock
	}
	age := func(path string, at time.Time) {
		t.Helper()
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	gone, _ := mkRunDir(runDirPrefix+"gone", false)
	age(gone, old)
	live, _ := mkRunDir(runDirPrefix+"live", true)
	age(live, old)
	fresh, _ := mkRunDir(runDirPrefix+"fresh", false) // gone, but changed just now
	unlocked := filepath.Join(base, runDirPrefix+"nolock")
	if err := os.Mkdir(unlocked, 0o700); err != nil {
		t.Fatal(err)
	}
	age(unlocked, old)
	halfRemoved := filepath.Join(base, runDirPrefix+"x.removing")
	if err := os.MkdirAll(filepath.Join(halfRemoved, "shim-1"), 0o700); err != nil {
		t.Fatal(err)
	}
	age(halfRemoved, old)
	other, _ := mkRunDir("other-gone", false)
	age(other, old)
	link := filepath.Join(base, runDirPrefix+"link")
	if err := os.Symlink(gone, link); err != nil {
		t.Fatal(err)
	}

	removed := sweepRunDirs(base)
	want := map[string]bool{gone: true, halfRemoved: true}
	if len(removed) != len(want) {
		t.Errorf("sweepRunDirs removed %v; want %v", removed, want)
	}
	for _, p := range removed {
		if !want[p] {
			t.Errorf("sweepRunDirs removed %s", p)
		}
	}
	for _, p := range []string{gone, halfRemoved} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after the sweep: %v; want it gone", p, err)
		}
	}
	for _, p := range []string{live, fresh, unlocked, other, link} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s after the sweep: %v; want it kept", p, err)
		}
	}
	// The running host's lock is still its own: the sweep let go of what it tried.
	if abandonedLock(live) != nil {
		t.Errorf("the running host's lock could be taken after the sweep")
	}
}
