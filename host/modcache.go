package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ModuleCache keeps the shim's compiled artefacts (serialised native code) on disk so that a capsule
// compiles once and later starts by deserialising. An artefact is named by the SHA-256 of the
// module and a digest of the wasmtime version and engine configuration that produced it, so a new
// shim build or a different engine setting never loads a stale artefact.
//
// Only the host writes here. Artefacts are trusted native code: they come from a shim that had not
// loaded any guest yet (the shim refuses to compile afterwards), are written atomically, and are
// read-only files in a directory shims only read.
type ModuleCache struct {
	dir string
}

// OpenModuleCache opens (creating if needed) the cache directory.
func OpenModuleCache(dir string) (*ModuleCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("module cache %s: %w", dir, err)
	}
	return &ModuleCache{dir: dir}, nil
}

// Dir is the cache directory.
func (c *ModuleCache) Dir() string { return c.dir }

// Path is where the artefact of the module with the given hash, compiled by the given wasmtime
// version and engine configuration, lives.
func (c *ModuleCache) Path(moduleSHA256, wasmtimeVersion, engineConfig string) string {
	engine := sha256.Sum256([]byte(wasmtimeVersion + "\n" + engineConfig))
	return filepath.Join(c.dir, moduleSHA256+"-"+hex.EncodeToString(engine[:8])+".cwasm")
}

// Has reports whether the artefact at path exists.
func (c *ModuleCache) Has(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// Store writes an artefact atomically (temporary file, then rename) as a read-only file.
func (c *ModuleCache) Store(path string, artefact []byte) error {
	tmp, err := os.CreateTemp(c.dir, ".tmp-*.cwasm")
	if err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(artefact); err != nil {
		tmp.Close()
		return fmt.Errorf("module cache: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		tmp.Close()
		return fmt.Errorf("module cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	return nil
}

// Remove deletes an artefact the shim could not load (corrupt, or from an incompatible build).
func (c *ModuleCache) Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("module cache: %w", err)
	}
	return nil
}
