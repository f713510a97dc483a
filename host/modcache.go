package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// KernelPath is where the artefact of a shim build's own kernel module lives. The kernel is
// embedded in the shim, so the shim's hash (and the engine's fuel setting) determine it.
func (c *ModuleCache) KernelPath(shimSHA256 string, fuel bool) string {
	name := "kernel-" + shimSHA256[:32]
	if fuel {
		name += "-fuel"
	}
	return filepath.Join(c.dir, name+".cwasm")
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

// Digest returns the SHA-256 of the module at path. Reading and hashing a module costs
// milliseconds of every capsule start, so the digest is remembered in an index next to the
// artefacts, keyed by the file's device, inode, size, modification and change times: any write to
// the file changes its change time, which its owner cannot set back.
func (c *ModuleCache) Digest(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("read module: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		_, sum, err := readModule(abs)
		return sum, err
	}
	identity := fmt.Sprintf("%d %d %d %d.%d %d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	pathKey := sha256.Sum256([]byte(abs))
	index := filepath.Join(c.dir, "digests", hex.EncodeToString(pathKey[:16]))
	if data, err := os.ReadFile(index); err == nil {
		if id, sum, ok := strings.Cut(strings.TrimSpace(string(data)), "\n"); ok && id == identity && len(sum) == 64 {
			return sum, nil
		}
	}
	_, sum, err := readModule(abs)
	if err != nil {
		return "", err
	}
	// The index is only a shortcut: failing to write it costs the next start a re-hash.
	if os.MkdirAll(filepath.Dir(index), 0o755) == nil {
		_ = os.WriteFile(index, []byte(identity+"\n"+sum+"\n"), 0o644)
	}
	return sum, nil
}
