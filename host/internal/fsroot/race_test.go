package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaceDirectorySwappedForSymlink swaps a directory of the workspace with a symlink (one
// rename(2) with RENAME_EXCHANGE, over and over) while the resolver reads a file beneath it. Every
// read must see the directory's file or be refused; none may see what the symlink leads to, be it
// outside the workspace or the host's state directory inside it. The test loops until it has seen
// both outcomes (the race window was hit from both sides) a number of times, or gives up after
// maxIter reads.
func TestRaceDirectorySwappedForSymlink(t *testing.T) {
	cases := []struct {
		name   string
		target func(f *fixture) string // where the symlink leads
		secret string                  // what must never be read
		file   string
	}{
		{"symlink out of the workspace", func(f *fixture) string { return f.outside }, "outside secret", "secret"},
		{"symlink into the state directory", func(f *fixture) string { return "bin/state" }, "host kv", "kv.db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			modes(t, func(t *testing.T, _ bool) {
				f := newFixture(t, []string{"*"}, []string{"*"})
				d := filepath.Join(f.ws, "d")
				os.MkdirAll(d, 0o755)
				write(t, filepath.Join(d, c.file), "inside")
				symlink(t, c.target(f), filepath.Join(f.ws, "l"))
				wsfd, err := unix.Open(f.ws, unix.O_PATH|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(wsfd)
				if err := unix.Renameat2(wsfd, "d", wsfd, "l", unix.RENAME_EXCHANGE); err != nil {
					t.Skipf("renameat2(RENAME_EXCHANGE) is not supported here: %v", err)
				}

				var stop atomic.Bool
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						unix.Renameat2(wsfd, "d", wsfd, "l", unix.RENAME_EXCHANGE)
					}
				}()
				defer func() { stop.Store(true); wg.Wait() }()

				const want, maxIter = 500, 200000
				var inside, refused int
				for i := 0; i < maxIter && (inside < want || refused < want); i++ {
					data, err := f.space.ReadFile([]byte("d/" + c.file))
					switch {
					case err == nil && string(data) == "inside":
						inside++
					case err == nil:
						t.Fatalf("read %q through the swapped symlink", data)
					case errors.Is(err, ErrEscapes) || errors.Is(err, ErrReserved):
						refused++
					default:
						// ENOENT and the like, when the swap lands between two lookups.
					}
				}
				if inside == 0 || refused == 0 {
					t.Skipf("the race window was not hit in %d reads (inside %d, refused %d)", maxIter, inside, refused)
				}
				t.Logf("inside %d, refused %d", inside, refused)
			})
		})
	}
}
