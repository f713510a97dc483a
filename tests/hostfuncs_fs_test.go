package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
)

// fsCapsule writes a copy of the built raw capsule named name whose [capabilities] are caps, and
// returns its directory.
func fsCapsule(t *testing.T, name, caps string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(capsules["raw"], "raw.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raw.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	toml := "[package]\nname = \"" + name + "\"\nversion = \"0.1.0\"\nastrid-version = \">=0.5.0\"\n\n" +
		"[[component]]\nid = \"raw\"\nfile = \"raw.wasm\"\n\n[capabilities]\n" + caps
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fsWorld is a host whose state directory lies inside its workspace (as `make run`'s bin/state
// does), with a directory outside the workspace holding a secret.
type fsWorld struct {
	ws, state, outside string
	h                  *host.Host
}

func newFSWorld(t *testing.T) *fsWorld {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &fsWorld{ws: filepath.Join(base, "ws"), outside: filepath.Join(base, "outside")}
	w.state = filepath.Join(w.ws, "bin", "state")
	for _, d := range []string{w.state, w.outside, filepath.Join(w.ws, "data"), filepath.Join(w.ws, "links")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range map[string]string{
		filepath.Join(w.outside, "secret"): "outside secret",
		filepath.Join(w.ws, "private"):     "private",
		filepath.Join(w.state, "probe"):    "host state",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(w.outside, filepath.Join(w.ws, "links", "out")); err != nil {
		t.Fatal(err)
	}
	w.h = newHost(t, func(c *host.Config) { c.Workspace, c.StateDir = w.ws, w.state })
	return w
}

// hostResult splits a HostResult block: ok and the payload or error text.
func hostResult(t *testing.T, fn string, out []byte, err error) (bool, string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s trapped: %v", fn, err)
	}
	if len(out) == 0 || out[0] > 1 {
		t.Fatalf("%s: %q is not a HostResult", fn, out)
	}
	return out[0] == 0, string(out[1:])
}

// TestFSLegitimate: the seven functions from a guest with no SDK, through a real shim, on the
// workspace (cwd://, plain paths, a stripped leading /), home:// and /tmp.
func TestFSLegitimate(t *testing.T) {
	checkLeaks(t)
	w := newFSWorld(t)
	inst, _ := loadCapsule(t, w.h, fsCapsule(t, "fsok", `fs_read = ["cwd://data", "home://"]
fs_write = ["cwd://data", "home://"]
`))
	call := func(fn string, args ...string) ([]byte, error) {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		return callRaw(t, inst, fn, b...)
	}
	mustVoid := func(fn string, args ...string) {
		t.Helper()
		if out, err := call(fn, args...); err != nil || len(out) != 0 {
			t.Fatalf("%s %q: %q, %v", fn, args, out, err)
		}
	}
	mustOK := func(fn, path, want string) {
		t.Helper()
		out, err := call(fn, path)
		if ok, got := hostResult(t, fn, out, err); !ok || got != want {
			t.Fatalf("%s %q: ok=%v %q; want %q", fn, path, ok, got, want)
		}
	}
	mustVoid("astrid_fs_mkdir", "cwd://data/x/y")
	mustVoid("astrid_write_file", "data/a.txt", "hello")
	mustVoid("astrid_write_file", "/data/x/b.txt", "bee") // "/" stripped: the workspace's data/x
	if got, _ := os.ReadFile(filepath.Join(w.ws, "data/x/b.txt")); string(got) != "bee" {
		t.Fatalf("the write did not go straight to the workspace: %q", got)
	}
	mustOK("astrid_read_file", "cwd://data/a.txt", "hello")
	mustOK("astrid_fs_readdir", "data", `["a.txt","x"]`)
	mustOK("astrid_fs_exists", "data/a.txt", "true")
	mustOK("astrid_fs_exists", "data/none", "")
	out, err := call("astrid_fs_stat", "data/a.txt")
	_, st := hostResult(t, "stat", out, err)
	var meta struct {
		Size  uint64 `json:"size"`
		IsDir bool   `json:"isDir"`
		Mtime uint64 `json:"mtime"`
	}
	if err := json.Unmarshal([]byte(st), &meta); err != nil || meta.Size != 5 || meta.IsDir || meta.Mtime == 0 {
		t.Fatalf("stat: %s, %v", st, err)
	}
	out, err = call("astrid_fs_stat", "data/x/y")
	if _, st := hostResult(t, "stat", out, err); !strings.Contains(st, `"isDir":true`) {
		t.Fatalf("stat of a directory: %s", st)
	}
	mustVoid("astrid_fs_unlink", "data/a.txt")
	mustVoid("astrid_fs_unlink", "data/x/y")
	mustOK("astrid_fs_exists", "data/a.txt", "")
	mustOK("astrid_fs_readdir", "data/x", `["b.txt"]`)
	// home:// and /tmp: STATE/home/PRINCIPAL and its .local/tmp, made on demand.
	mustVoid("astrid_write_file", "home://notes.md", "n")
	mustVoid("astrid_write_file", "/tmp/scratch", "s")
	if got, _ := os.ReadFile(filepath.Join(w.state, "home", host.DefaultPrincipal, ".local/tmp/scratch")); string(got) != "s" {
		t.Fatalf("/tmp is not STATE/home/%s/.local/tmp: %q", host.DefaultPrincipal, got)
	}
	mustOK("astrid_read_file", "home://.local/tmp/scratch", "s")
	mustOK("astrid_read_file", "home://notes.md", "n")
	mustOK("astrid_fs_readdir", "/tmp", `["scratch"]`)
}

// TestFSRefusals: what the gate and the resolution refuse, each with its text, as a HostResult
// error (exists, readdir, stat, read_file) or a trap (mkdir, unlink, write_file).
func TestFSRefusals(t *testing.T) {
	checkLeaks(t)
	w := newFSWorld(t)
	if f, err := os.Create(filepath.Join(w.ws, "data", "huge")); err != nil {
		t.Fatal(err)
	} else {
		f.Truncate(11 << 20) // sparse: 11 MiB
		f.Close()
	}
	inst, _ := loadCapsule(t, w.h, fsCapsule(t, "fsno", `fs_read = ["cwd://data", "cwd://links", "cwd://bin"]
fs_write = ["cwd://data", "cwd://links", "cwd://bin"]
`))
	ws, home := w.ws, filepath.Join(w.state, "home", host.DefaultPrincipal)
	const reserved = "resolves into the host's state or runtime directory, which capsules cannot reach"
	cases := []struct {
		name string
		fn   string
		args []string
		want string // the HostResult error, or the trap's text for void functions
	}{
		{"dotdot", "astrid_read_file", []string{"data/../private"},
			"security denied read_file: capsule 'fsno' denied: read access to '" + ws + "/data/../private' not declared in manifest"},
		{"dotdot out of the workspace", "astrid_fs_readdir", []string{"cwd://../outside"},
			"security denied readdir: capsule 'fsno' denied: read access to '" + ws + "/../outside' not declared in manifest"},
		{"dotdot write", "astrid_write_file", []string{"data/../private", "x"},
			"security denied write_file: capsule 'fsno' denied: write access to '" + ws + "/data/../private' not declared in manifest"},
		{"read outside fs_read", "astrid_read_file", []string{"private"},
			"security denied read_file: capsule 'fsno' denied: read access to '" + ws + "/private' not declared in manifest"},
		{"/etc/passwd is the workspace's", "astrid_read_file", []string{"/etc/passwd"},
			"security denied read_file: capsule 'fsno' denied: read access to '" + ws + "/etc/passwd' not declared in manifest"},
		{"exists outside fs_read", "astrid_fs_exists", []string{"private"},
			"security denied exists check: capsule 'fsno' denied: read access to '" + ws + "/private' not declared in manifest"},
		{"stat outside fs_read", "astrid_fs_stat", []string{"cwd://"},
			"security denied stat: capsule 'fsno' denied: read access to '" + ws + "' not declared in manifest"},
		{"write outside fs_write", "astrid_write_file", []string{"private", "x"},
			"security denied write_file: capsule 'fsno' denied: write access to '" + ws + "/private' not declared in manifest"},
		{"mkdir outside fs_write", "astrid_fs_mkdir", []string{"newdir"},
			"security denied mkdir: capsule 'fsno' denied: write access to '" + ws + "/newdir' not declared in manifest"},
		{"unlink outside fs_write", "astrid_fs_unlink", []string{"private"},
			"security denied unlink: capsule 'fsno' denied: write access to '" + ws + "/private' not declared in manifest"},
		{"read through a symlink out", "astrid_read_file", []string{"links/out/secret"},
			"path escapes root boundary: links/out/secret resolves outside " + ws},
		{"write through a symlink out", "astrid_write_file", []string{"links/out/planted", "x"},
			"path escapes root boundary: links/out/planted resolves outside " + ws},
		{"unlink through a symlink out", "astrid_fs_unlink", []string{"links/out/secret"},
			"path escapes root boundary: links/out/secret resolves outside " + ws},
		{"read the symlink out itself", "astrid_read_file", []string{"links/out"},
			"IO error: IO error: Too many levels of symbolic links (os error 40)"},
		{"home:// without an fs_read entry", "astrid_read_file", []string{"home://notes.md"},
			"security denied read_file: capsule 'fsno' denied: read access to '" + home + "/notes.md' not declared in manifest"},
		{"/tmp without an fs_write entry", "astrid_write_file", []string{"/tmp/x", "x"},
			"security denied write_file: capsule 'fsno' denied: write access to '" + home + "/.local/tmp/x' not declared in manifest"},
		{"file over 10 MiB", "astrid_read_file", []string{"data/huge"},
			"IO error: Permission denied: File too large to read into memory (11534336 bytes > 10485760 bytes)"},
		{"state dir inside the workspace: read", "astrid_read_file", []string{"bin/state/probe"}, "path is reserved: bin/state/probe " + reserved},
		{"state dir inside the workspace: write", "astrid_write_file", []string{"bin/state/probe", "x"}, "path is reserved: bin/state/probe " + reserved},
		{"state dir inside the workspace: list", "astrid_fs_readdir", []string{"bin/state"}, "path is reserved: bin/state " + reserved},
		{"state dir inside the workspace: module cache", "astrid_fs_readdir", []string{"bin/state/modules"}, "path is reserved: bin/state/modules " + reserved},
		{"state dir inside the workspace: unlink", "astrid_fs_unlink", []string{"bin/state/probe"}, "path is reserved: bin/state/probe " + reserved},
		{"mkdir of the root", "astrid_fs_mkdir", []string{"cwd://"},
			"security denied mkdir: capsule 'fsno' denied: write access to '" + ws + "' not declared in manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := make([][]byte, len(c.args))
			for i, a := range c.args {
				args[i] = []byte(a)
			}
			out, err := callRaw(t, inst, c.fn, args...)
			var got string
			switch c.fn {
			case "astrid_fs_mkdir", "astrid_fs_unlink", "astrid_write_file":
				if err == nil {
					t.Fatalf("no trap (result %q); want %q", out, c.want)
				}
				got = err.Error()
			default:
				ok, text := hostResult(t, c.fn, out, err)
				if ok {
					t.Fatalf("HostResult ok %q; want the error %q", text, c.want)
				}
				got = text
				if got != c.want {
					t.Fatalf("HostResult error %q;\nwant %q", got, c.want)
				}
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("error %q;\nwant %q", got, c.want)
			}
		})
	}
	for path, want := range map[string]string{
		filepath.Join(w.outside, "secret"): "outside secret",
		filepath.Join(w.ws, "private"):     "private",
		filepath.Join(w.state, "probe"):    "host state",
	} {
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("%s was changed: %q", path, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(w.outside, "planted")); err == nil {
		t.Error("a file was planted outside the workspace through the symlink")
	}
}
