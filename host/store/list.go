package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/astrid-go/astrid/host/internal/safefile"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared"
)

// ManifestName is the file that makes a directory a capsule (manifest.FileName).
const ManifestName = manifest.FileName

// Installed is one capsule directory of the store, as List finds it.
type Installed struct {
	// Name is the directory's name, which install makes the capsule's package.name.
	Name string
	// Dir is STATE/capsules/NAME.
	Dir string
	// Meta is the capsule's meta.json, nil when it could not be read (MetaErr says why).
	Meta    *Meta
	MetaErr error
}

// List returns the capsules of the store in name order: every directory of STATE/capsules that
// holds a Capsule.toml. Entries whose names start with "." (the store's own staging and backup
// directories) are not capsules. A store that does not exist yet is empty. List only reads: what
// an interrupted install left is put right by Recover.
func List(stateDir string) ([]Installed, error) {
	entries, err := os.ReadDir(Dir(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the capsule store: %w", err)
	}
	var out []Installed
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(Dir(stateDir), e.Name())
		if _, err := os.Lstat(filepath.Join(dir, ManifestName)); err != nil {
			continue
		}
		in := Installed{Name: e.Name(), Dir: dir}
		in.Meta, in.MetaErr = ReadMeta(dir)
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Verify checks an installed capsule's module against its meta.json as a load from the store
// does: nil when it matches; VerifyModule's refusal (wrapping ErrNoHash or ErrHashMismatch)
// when it does not; another error when the manifest or the module cannot be read.
func Verify(in Installed) error {
	if in.MetaErr != nil && !errors.Is(in.MetaErr, fs.ErrNotExist) {
		return in.MetaErr
	}
	m, _, err := manifest.Load(in.Dir)
	if err != nil {
		return err
	}
	wasm, err := safefile.ReadFile(m.WasmPath(), shared.MaxModuleBytes)
	if err != nil {
		return fmt.Errorf("read module: %w", err)
	}
	return VerifyModule(m.ID(), in.Meta, wasm)
}

// Holds reports whether dir is one of the store's capsule directories: directly in
// STATE/capsules, compared with symlinks resolved, so that a capsule of the store given by a path
// (or a link to it) is still recognised as installed and verified.
func Holds(stateDir, dir string) bool {
	storeDir, err := filepath.EvalSymlinks(Dir(stateDir))
	if err != nil {
		return false
	}
	storeDir, err = filepath.Abs(storeDir)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return false
	}
	return filepath.Dir(real) == storeDir && !strings.HasPrefix(filepath.Base(real), ".")
}
