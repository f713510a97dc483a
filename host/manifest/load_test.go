package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Headers of WebAssembly binaries: an empty core module is exactly its
// 8-byte header.
const (
	coreModule      = "\x00asm\x01\x00\x00\x00"
	componentBinary = "\x00asm\x0d\x00\x01\x00"
)

// writeCapsule creates a capsule directory with the given manifest and
// files (name -> content; a name ending in "/" is created as a directory).
func writeCapsule(t *testing.T, manifest string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	m, warns, err := Load(writeCapsule(t, base+"[limits]\nmemory = \"32MiB\"\n", map[string]string{"demo.wasm": coreModule}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings = %v", warns)
	}
	if m.ID() != "demo" || m.Limits.Memory != 32<<20 || filepath.Base(m.Path) != FileName {
		t.Errorf("manifest = %+v", m)
	}
	if _, err := os.Stat(m.WasmPath()); err != nil || !filepath.IsAbs(m.WasmPath()) {
		t.Errorf("WasmPath() = %q: %v", m.WasmPath(), err)
	}
}

func TestLoadSymlinkedWasm(t *testing.T) {
	dir := writeCapsule(t, base, map[string]string{"build/out.wasm": coreModule})
	if err := os.Symlink(filepath.Join("build", "out.wasm"), filepath.Join(dir, "demo.wasm")); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	if _, _, err := Load(dir); err != nil {
		t.Errorf("Load: %v", err)
	}
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		files    map[string]string
		errs     []want
	}{
		{"missing wasm", base, nil, []want{{"component[0].file", 6, `wasm file "demo.wasm" (`}}},
		{"missing wasm says so", base, nil, []want{{"component[0].file", 6, ") does not exist"}}},
		{"not wasm", base, map[string]string{"demo.wasm": "#!/bin/sh\necho hi\n"}, []want{{"component[0].file", 6, `is not a WebAssembly module: it does not start with the "\0asm" magic bytes`}}},
		{"empty file", base, map[string]string{"demo.wasm": ""}, []want{{"component[0].file", 6, "does not start with the"}}},
		{"truncated", base, map[string]string{"demo.wasm": "\x00asm\x01"}, []want{{"component[0].file", 6, "it is truncated (5 bytes; the header alone is 8)"}}},
		{"component binary", base, map[string]string{"demo.wasm": componentBinary + "rest"}, []want{{"component[0].file", 6, "is a WebAssembly component (component-model binary), not a core module"}}},
		{"unknown version", base, map[string]string{"demo.wasm": "\x00asm\x02\x00\x00\x00"}, []want{{"component[0].file", 6, "its binary version is 02 00 00 00, want 01 00 00 00"}}},
		{"directory", base, map[string]string{"demo.wasm/": ""}, []want{{"component[0].file", 6, "is a directory, not a .wasm file"}}},
		{"entrypoint key", strings.Replace(base, "file =", "entrypoint =", 1), nil, []want{{"component[0].entrypoint", 6, "does not exist"}}},
		{"manifest and file problems together", strings.Replace(base, `"0.1.0"`, `"1"`, 1) + "[limits]\nfuel = 0\n", map[string]string{"demo.wasm": componentBinary},
			[]want{
				{"package.version", 3, "strict semver"},
				{"component[0].file", 6, "is a WebAssembly component"},
				{"limits.fuel", 8, "must be a positive integer"},
			}},
		{"invalid path is not looked up", strings.Replace(base, `"demo.wasm"`, `"../demo.wasm"`, 1), nil,
			[]want{{"component[0].file", 6, "is not inside the capsule directory"}}},
		{"only the first component is checked", base + "[[component]]\nfile = \"missing.wasm\"\n", map[string]string{"demo.wasm": "nope"},
			[]want{{"component[0].file", 6, "does not start with the"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeCapsule(t, tt.manifest, tt.files)
			m, _, err := Load(dir)
			if m != nil {
				t.Errorf("manifest = %+v, want nil", m)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error = %v (%T), want Errors", err, err)
			}
			// Problems name the manifest by the path Load was given.
			for i := range errs {
				if want := filepath.Join(dir, FileName); errs[i].File != want {
					t.Errorf("File = %q, want %q", errs[i].File, want)
				}
				errs[i].File = "Capsule.toml"
			}
			checkProblems(t, "errors", errs, tt.errs)
		})
	}
}

func TestLoadMissingManifest(t *testing.T) {
	dir := t.TempDir()
	_, _, err := Load(dir)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].File != filepath.Join(dir, FileName) || !strings.Contains(errs[0].Message, "no Capsule.toml here") {
		t.Errorf("Load(empty dir) = %v", err)
	}
}

func TestLoadReturnsWarnings(t *testing.T) {
	dir := writeCapsule(t, base+"extra = true\n", nil)
	_, warns, err := Load(dir)
	if err == nil {
		t.Fatal("Load succeeded without a wasm file")
	}
	if len(warns) != 1 || warns[0].Key != "component[0].extra" || warns[0].Line != 7 {
		t.Errorf("warnings = %v", warns)
	}
}

func TestForWasm(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "My_Capsule.v2.wasm")
	if err := os.WriteFile(path, []byte(coreModule), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	m, err := ForWasm("My_Capsule.v2.wasm")
	if err != nil {
		t.Fatalf("ForWasm: %v", err)
	}
	want := &Manifest{
		Dir:        m.Dir,
		Package:    Package{Name: "my-capsule-v2", Version: "0.0.0"},
		Components: []Component{{File: "My_Capsule.v2.wasm", Type: "executable"}},
		Limits:     defaultLimits(),
		Restart:    defaultRestart(),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("ForWasm =\n%+v, want\n%+v", m, want)
	}
	if !filepath.IsAbs(m.Dir) || m.Path != "" || m.ID() != "my-capsule-v2" {
		t.Errorf("Dir %q Path %q ID %q", m.Dir, m.Path, m.ID())
	}
	if got, err := filepath.EvalSymlinks(m.WasmPath()); err != nil || filepath.Base(got) != "My_Capsule.v2.wasm" {
		t.Errorf("WasmPath() = %q (%v)", m.WasmPath(), err)
	}
}

func TestForWasmProblems(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"component.wasm": componentBinary, "text.wasm": "hello"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path string
		msg  string
	}{
		{filepath.Join(dir, "missing.wasm"), "wasm file does not exist"},
		{filepath.Join(dir, "component.wasm"), "wasm file is a WebAssembly component"},
		{filepath.Join(dir, "text.wasm"), "wasm file is not a WebAssembly module"},
		{dir, "wasm file is a directory"},
	}
	for _, tt := range tests {
		m, err := ForWasm(tt.path)
		var errs Errors
		if m != nil || !errors.As(err, &errs) || len(errs) != 1 || errs[0].File != tt.path || !strings.Contains(errs[0].Message, tt.msg) {
			t.Errorf("ForWasm(%q) = %v, %v; want a problem containing %q", tt.path, m, err, tt.msg)
		}
	}
}

func TestIDFromFileName(t *testing.T) {
	tests := map[string]string{
		"hello.wasm":            "hello",
		"Hello_World.wasm":      "hello-world",
		"my.capsule.v1.wasm":    "my-capsule-v1",
		"--edge--.wasm":         "edge",
		"___.wasm":              "capsule",
		"capsule":               "capsule",
		"ÜBER cool!.wasm":       "ber-cool",
		"astrid-capsule-x.WASM": "astrid-capsule-x",
	}
	for in, want := range tests {
		if got := idFromFileName(in); got != want {
			t.Errorf("idFromFileName(%q) = %q, want %q", in, got, want)
		}
		if got := idFromFileName(in); !validID(got) {
			t.Errorf("idFromFileName(%q) = %q, not a valid id", in, got)
		}
	}
}
