package fsroot

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fixture is a workspace with the host's state and runtime directories inside it (as tests and
// `make run` have them), a secret outside it, and a Space over them.
type fixture struct {
	ws, state, run, outside string
	space                   *Space
}

func newFixture(t *testing.T, fsRead, fsWrite []string) *fixture {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		ws:      filepath.Join(base, "ws"),
		outside: filepath.Join(base, "outside"),
	}
	f.state = filepath.Join(f.ws, "bin", "state")
	f.run = filepath.Join(f.ws, "run")
	for _, d := range []string{f.ws, f.state, f.run, f.outside, filepath.Join(f.ws, "src")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(f.outside, "secret"), "outside secret")
	write(t, filepath.Join(f.state, "kv.db"), "host kv")
	write(t, filepath.Join(f.run, "shim.sock"), "socket")
	write(t, filepath.Join(f.ws, "src", "main.go"), "package main")
	f.space = &Space{Workspace: f.ws, StateDir: f.state, RunDir: f.run, Principal: "alice", Capsule: "fstest",
		FSRead: fsRead, FSWrite: fsWrite}
	return f
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// modes runs a test with openat2 and with the component walk that replaces it on kernels
// without openat2.
func modes(t *testing.T, run func(t *testing.T, walk bool)) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			if walk {
				useOpenat2.Store(false)
				t.Cleanup(func() { useOpenat2.Store(true) })
			} else if !openat2Works(t) {
				t.Skip("this kernel has no openat2 (Linux < 5.6)")
			}
			run(t, walk)
		})
	}
}

func openat2Works(t *testing.T) bool {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, err := r.openBeneath([]string{"."})
	if err == nil {
		closeFD(fd)
	}
	return useOpenat2.Load()
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q; want one containing %q", err, want)
	}
}

func TestLegitimateOperations(t *testing.T) {
	modes(t, func(t *testing.T, _ bool) {
		f := newFixture(t, []string{"cwd://", "home://"}, []string{"cwd://out", "home://"})
		sp := f.space
		if err := sp.Mkdir([]byte("cwd://out/a/b")); err != nil {
			t.Fatal(err)
		}
		if err := sp.Mkdir([]byte("out/a/b")); err != nil { // existing: success, as create_dir_all
			t.Fatal(err)
		}
		if err := sp.WriteFile([]byte("/out/a/b/f.txt"), []byte("hello")); err != nil { // leading / stripped
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(f.ws, "out/a/b/f.txt")); string(got) != "hello" {
			t.Fatalf("the write did not reach the workspace directly: %q", got)
		}
		if err := sp.WriteFile([]byte("out/a/b/f.txt"), []byte("hi")); err != nil { // truncates
			t.Fatal(err)
		}
		got, err := sp.ReadFile([]byte("cwd://out/a/b/f.txt"))
		if err != nil || string(got) != "hi" {
			t.Fatalf("read %q, %v", got, err)
		}
		list, err := sp.Readdir([]byte("out/a/b"))
		if err != nil || string(list) != `["f.txt"]` {
			t.Fatalf("readdir %s, %v", list, err)
		}
		st, err := sp.Stat([]byte("out/a/b/f.txt"))
		var meta struct {
			Size  uint64 `json:"size"`
			IsDir bool   `json:"isDir"`
			Mtime uint64 `json:"mtime"`
		}
		if err != nil || json.Unmarshal(st, &meta) != nil || meta.Size != 2 || meta.IsDir || meta.Mtime == 0 {
			t.Fatalf("stat %s, %v", st, err)
		}
		if st, _ := sp.Stat([]byte("cwd://")); !bytes.Contains(st, []byte(`"isDir":true`)) {
			t.Fatalf("stat of the workspace: %s", st)
		}
		for _, p := range []string{"out/a/b/f.txt", "src", "cwd://", ""} {
			if ok, err := sp.Exists([]byte(p)); !ok || err != nil {
				t.Fatalf("exists %q: %v, %v", p, ok, err)
			}
		}
		if ok, err := sp.Exists([]byte("nope/nothing")); ok || err != nil {
			t.Fatalf("exists of a missing path: %v, %v", ok, err)
		}
		if err := sp.Unlink([]byte("out/a/b/f.txt")); err != nil {
			t.Fatal(err)
		}
		if err := sp.Unlink([]byte("out/a/b")); err != nil { // an empty directory
			t.Fatal(err)
		}
		if ok, _ := sp.Exists([]byte("out/a/b")); ok {
			t.Fatal("unlink left the directory")
		}
		// home:// and /tmp, created on demand under STATE/home/PRINCIPAL.
		if err := sp.WriteFile([]byte("home://notes.md"), []byte("n")); err != nil {
			t.Fatal(err)
		}
		if err := sp.WriteFile([]byte("/tmp/scratch"), []byte("s")); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(f.state, "home/alice/.local/tmp/scratch")); string(got) != "s" {
			t.Fatalf("/tmp did not map to STATE/home/alice/.local/tmp: %q", got)
		}
		if got, err := sp.ReadFile([]byte("home://.local/tmp/scratch")); string(got) != "s" || err != nil {
			t.Fatalf("home:// does not cover /tmp: %q, %v", got, err)
		}
		if list, _ := sp.Readdir([]byte("/tmp")); string(list) != `["scratch"]` {
			t.Fatalf("readdir /tmp: %s", list)
		}
	})
}

// TestSymlinksInsideFollowed: an intermediate symlink that stays in the workspace is followed
// (with openat2), and the gate checks where it physically leads.
func TestSymlinksInside(t *testing.T) {
	modes(t, func(t *testing.T, walk bool) {
		f := newFixture(t, []string{"cwd://"}, []string{"cwd://src"})
		symlink(t, "src", filepath.Join(f.ws, "srclink"))
		got, err := f.space.ReadFile([]byte("srclink/main.go"))
		if walk {
			wantErr(t, err, "path escapes root boundary: srclink/main.go")
			return
		}
		if err != nil || string(got) != "package main" {
			t.Fatalf("read through an inner symlink: %q, %v", got, err)
		}
		if err := f.space.WriteFile([]byte("srclink/new.go"), []byte("x")); err != nil {
			t.Fatalf("write through an inner symlink into a granted directory: %v", err)
		}
	})
}

func TestRefusals(t *testing.T) {
	modes(t, func(t *testing.T, _ bool) {
		f := newFixture(t, []string{"cwd://src", "cwd://links", "cwd://big"}, []string{"cwd://src", "cwd://links"})
		ws := f.ws
		os.MkdirAll(filepath.Join(ws, "links"), 0o755)
		os.MkdirAll(filepath.Join(ws, "big"), 0o755)
		write(t, filepath.Join(ws, "private"), "private")
		symlink(t, f.outside, filepath.Join(ws, "links", "outdir"))                           // a directory link out
		symlink(t, filepath.Join(f.outside, "secret"), filepath.Join(ws, "links", "outfile")) // a file link out
		symlink(t, "../../bin/state", filepath.Join(ws, "links", "statelink"))                // into the state dir
		big, err := os.Create(filepath.Join(ws, "big", "huge"))
		if err != nil {
			t.Fatal(err)
		}
		big.Truncate(11 << 20) // sparse
		big.Close()
		write(t, filepath.Join(ws, "big", "limit"), strings.Repeat("x", MaxFileBytes))

		sp := f.space
		all := *sp // may write the whole workspace
		all.FSWrite = []string{"cwd://"}
		read := func(p string) error { _, err := sp.ReadFile([]byte(p)); return err }
		cases := []struct {
			name string
			do   func() error
			want string
		}{
			{"dotdot read", func() error { return read("src/../private") },
				"security denied read_file: capsule 'fstest' denied: read access to '" + ws + "/src/../private' not declared in manifest"},
			{"dotdot escaping", func() error { return read("../outside/secret") }, "security denied read_file: capsule 'fstest' denied: read access to '" + ws + "/../outside/secret'"},
			{"dotdot write", func() error { return sp.WriteFile([]byte("src/../x"), nil) }, "security denied write_file:"},
			{"dotdot exists", func() error { _, err := sp.Exists([]byte("src/..")); return err }, "security denied exists check:"},
			{"read outside fs_read", func() error { return read("private") },
				"security denied read_file: capsule 'fstest' denied: read access to '" + ws + "/private' not declared in manifest"},
			{"prefix is component-wise", func() error { return read("src-evil/x") }, "security denied read_file:"},
			{"readdir outside fs_read", func() error { _, err := sp.Readdir([]byte("cwd://")); return err }, "security denied readdir:"},
			{"stat outside fs_read", func() error { _, err := sp.Stat([]byte("private")); return err }, "security denied stat:"},
			{"exists outside fs_read", func() error { _, err := sp.Exists([]byte("private")); return err }, "security denied exists check:"},
			{"exists outside fs_read, missing parent", func() error { _, err := sp.Exists([]byte("nope/x")); return err }, "security denied exists check:"},
			{"write outside fs_write", func() error { return sp.WriteFile([]byte("big/new"), []byte("x")) },
				"security denied write_file: capsule 'fstest' denied: write access to '" + ws + "/big/new' not declared in manifest"},
			{"mkdir outside fs_write", func() error { return sp.Mkdir([]byte("newdir/a")) }, "security denied mkdir:"},
			{"unlink outside fs_write", func() error { return sp.Unlink([]byte("private")) }, "security denied unlink:"},
			{"home without fs_read", func() error { return read("home://notes") }, "security denied read_file: capsule 'fstest' denied: read access to '" + f.state + "/home/alice/notes'"},
			{"tmp without fs_write", func() error { return sp.WriteFile([]byte("/tmp/x"), nil) }, "security denied write_file:"},
			{"read through a symlinked dir out", func() error { return read("links/outdir/secret") }, "path escapes root boundary: links/outdir/secret"},
			{"write through a symlinked dir out", func() error { return sp.WriteFile([]byte("links/outdir/new"), []byte("x")) }, "path escapes root boundary: links/outdir/new"},
			{"readdir through a symlink out", func() error { _, err := sp.Readdir([]byte("links/outdir")); return err }, "readdir failed: IO error: Not a directory (os error 20)"},
			{"read through a file symlink out", func() error { return read("links/outfile") }, "IO error: IO error: Too many levels of symbolic links (os error 40)"},
			{"write through a file symlink out", func() error { return sp.WriteFile([]byte("links/outfile"), []byte("x")) }, "write_file failed: IO error: Too many levels of symbolic links (os error 40)"},
			{"mkdir through a symlink out", func() error { return sp.Mkdir([]byte("links/outdir/sub")) }, "path escapes root boundary"},
			{"file over 10 MiB", func() error { return read("big/huge") }, "IO error: Permission denied: File too large to read into memory (11534336 bytes > 10485760 bytes)"},
			{"mkdir of the root", func() error { return all.Mkdir([]byte("cwd://")) }, "mkdir failed: Permission denied: Cannot operate on capability root directly"},
			{"unlink of the root", func() error { return all.Unlink([]byte("/")) }, "unlink failed: Permission denied: Cannot operate on capability root directly"},
			{"not UTF-8", func() error { return read("src/\xff") }, "path is not valid UTF-8"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { wantErr(t, c.do(), c.want) })
		}
		if data, err := sp.ReadFile([]byte("big/limit")); err != nil || len(data) != MaxFileBytes {
			t.Fatalf("a file of exactly 10 MiB: %d bytes, %v", len(data), err)
		}
		if got, _ := os.ReadFile(filepath.Join(f.outside, "secret")); string(got) != "outside secret" {
			t.Fatalf("the file outside was changed: %q", got)
		}
	})
}

// TestHostDirectoriesUnreachable: the state directory (kv.db, the module cache, the homes) and
// the runtime directory lie inside the workspace here, and a capsule granted the whole workspace
// still cannot reach them, by name, through a symlink, or by listing them.
func TestHostDirectoriesUnreachable(t *testing.T) {
	modes(t, func(t *testing.T, walk bool) {
		f := newFixture(t, []string{"*"}, []string{"cwd://"})
		symlink(t, "bin/state", filepath.Join(f.ws, "statelink"))
		symlink(t, "bin", filepath.Join(f.ws, "binlink"))
		sp := f.space
		const reserved = "resolves into the host's state or runtime directory"
		cases := []struct {
			name string
			do   func() error
			want string
		}{
			{"read kv.db", func() error { _, err := sp.ReadFile([]byte("bin/state/kv.db")); return err }, reserved},
			{"write into state", func() error { return sp.WriteFile([]byte("bin/state/kv.db"), []byte("x")) }, reserved},
			{"unlink kv.db", func() error { return sp.Unlink([]byte("bin/state/kv.db")) }, reserved},
			{"readdir state", func() error { _, err := sp.Readdir([]byte("bin/state")); return err }, reserved},
			{"stat state", func() error { _, err := sp.Stat([]byte("bin/state")); return err }, reserved},
			{"unlink state", func() error { return sp.Unlink([]byte("bin/state")) }, reserved},
			{"mkdir in state", func() error { return sp.Mkdir([]byte("bin/state/modules/x")) }, reserved},
			{"exists kv.db", func() error { _, err := sp.Exists([]byte("bin/state/kv.db")); return err }, reserved},
			{"home through the workspace", func() error { _, err := sp.ReadFile([]byte("bin/state/home/alice/x")); return err }, reserved},
			{"run dir socket", func() error { _, err := sp.ReadFile([]byte("run/shim.sock")); return err }, reserved},
			{"read through a symlinked parent", func() error { _, err := sp.ReadFile([]byte("binlink/state/kv.db")); return err }, reserved},
			{"read through a symlink to state", func() error { _, err := sp.ReadFile([]byte("statelink/kv.db")); return err }, reserved},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				want := c.want
				if walk && strings.Contains(c.name, "symlink") {
					want = "path escapes root boundary"
				}
				wantErr(t, c.do(), want)
			})
		}
		if got, _ := os.ReadFile(filepath.Join(f.state, "kv.db")); string(got) != "host kv" {
			t.Fatalf("kv.db was changed: %q", got)
		}
		// The workspace itself may be listed: the names are all a capsule learns.
		if list, err := sp.Readdir([]byte("bin")); err != nil || string(list) != `["state"]` {
			t.Fatalf("readdir bin: %s, %v", list, err)
		}
	})
}

// TestWorkspaceInsideStateRefused: a workspace inside the state directory would expose it all.
func TestWorkspaceInsideStateRefused(t *testing.T) {
	f := newFixture(t, []string{"*"}, nil)
	f.space.Workspace = filepath.Join(f.state, "ws")
	os.MkdirAll(f.space.Workspace, 0o755)
	_, err := f.space.ReadFile([]byte("x"))
	wantErr(t, err, "the workspace is not available")
}

func TestNonRegularFiles(t *testing.T) {
	f := newFixture(t, []string{"*"}, []string{"*"})
	fifo := filepath.Join(f.ws, "src", "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Neither blocks: the opens are non-blocking and the type is checked on the descriptor.
	_, err := f.space.ReadFile([]byte("src/fifo"))
	wantErr(t, err, "is a named pipe (FIFO), not a regular file")
	err = f.space.WriteFile([]byte("src/fifo"), []byte("x"))
	wantErr(t, err, "write_file failed: IO error: No such device or address (os error 6)")
	_, err = f.space.ReadFile([]byte("src"))
	wantErr(t, err, "IO error: IO error: Is a directory (os error 21)")
}

// TestPrincipal: a home is named only by a valid principal id (package principal's rule).
func TestPrincipal(t *testing.T) {
	f := newFixture(t, []string{"home://"}, nil)
	f.space.Principal = "../../x"
	_, err := f.space.ReadFile([]byte("home://a"))
	wantErr(t, err, "home:// is not available: principal id contains invalid character '.'")
}

func mkfifo(path string) error { return unix.Mkfifo(path, 0o644) }

func closeFD(fd int) { unix.Close(fd) }
