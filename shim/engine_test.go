package shim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared"
)

// TestDeserializeInherited checks both ways an inherited artefact loads: by its path (wasmtime
// maps the code, nothing is copied; Bytes is left out to prove the path was used) and, where
// /proc does not show the descriptor, from its bytes.
func TestDeserializeInherited(t *testing.T) {
	e := testEngine(t, false)
	wasm, err := wasmtime.Wat2Wasm(`(module (func (export "f") (result i32) i32.const 7))`)
	if err != nil {
		t.Fatal(err)
	}
	art, err := e.Compile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "f.cwasm")
	if err := os.WriteFile(path, art, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		a    *shared.Artefact
	}{
		{"by path", &shared.Artefact{Path: path}},
		{"from bytes", &shared.Artefact{Bytes: art}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := e.DeserializeInherited(tc.a, "f")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if _, ok := exportNames(m)["f"]; !ok {
				t.Fatalf("the loaded module lacks its export f")
			}
		})
	}
	t.Run("neither", func(t *testing.T) {
		if _, err := e.DeserializeInherited(&shared.Artefact{Path: filepath.Join(t.TempDir(), "missing")}, "f"); err == nil {
			t.Fatal("an artefact with no readable path and no bytes loaded")
		}
	})
}
