// Package store is the capsule store: the capsules installed with `astrid-host install`, one
// directory each under STATE/capsules/NAME/, holding the capsule's files as installed and a
// meta.json that records the installed version and the BLAKE3 hash of its module.
//
// A capsule loaded from the store is verified: its module must hash to what meta.json records,
// or it is refused with upstream Astrid's message (see VerifyModule). Capsules loaded from a
// directory given on the command line are development capsules and are not verified.
package store

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/zeebo/blake3"

	"github.com/astrid-go/astrid/host/internal/safefile"
)

// MetaName is the file in an installed capsule's directory that records how it was installed.
const MetaName = "meta.json"

// MaxMetaBytes bounds the meta.json the store reads: 1 MiB, far more than any it writes.
const MaxMetaBytes = 1 << 20

// Dir is the store's directory under the host's state directory: STATE/capsules.
func Dir(stateDir string) string { return filepath.Join(stateDir, "capsules") }

// CapsuleDir is where the capsule named name is installed: STATE/capsules/NAME.
func CapsuleDir(stateDir, name string) string { return filepath.Join(Dir(stateDir), name) }

// Meta is meta.json, with upstream Astrid's field names (astrid-cli's CapsuleMeta), so that a
// capsule directory installed by either reads the same.
type Meta struct {
	// Version is the installed package.version.
	Version string `json:"version"`
	// InstalledAt and UpdatedAt are RFC 3339 times of the first install and the last upgrade.
	InstalledAt string `json:"installed_at"`
	UpdatedAt   string `json:"updated_at"`
	// Source is what was installed from (an absolute directory or .wasm path).
	Source string `json:"source,omitempty"`
	// Imports and Exports are the capsule's [imports]/[exports]: namespace -> interface ->
	// version requirement (imports) or exact version (exports).
	Imports map[string]map[string]string `json:"imports,omitempty"`
	Exports map[string]map[string]string `json:"exports,omitempty"`
	// WasmHash is the BLAKE3 hash of the module, 64 lowercase hex digits. A store capsule
	// without one is refused.
	WasmHash string `json:"wasm_hash,omitempty"`
}

// Now is the time format of InstalledAt and UpdatedAt.
func Now() string { return time.Now().UTC().Format(time.RFC3339) }

// ReadMeta reads dir/meta.json. A missing file is an error wrapping fs.ErrNotExist.
func ReadMeta(dir string) (*Meta, error) {
	path := filepath.Join(dir, MetaName)
	data, err := safefile.ReadFile(path, MaxMetaBytes)
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid meta.json: %w", path, err)
	}
	return &m, nil
}

// HasMeta reports whether dir has a meta.json (of any kind).
func HasMeta(dir string) bool {
	_, err := ReadMeta(dir)
	return !errors.Is(err, fs.ErrNotExist)
}

// Hash is the BLAKE3 hash of a module, as meta.json records it: 64 lowercase hex digits.
func Hash(wasm []byte) string {
	sum := blake3.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// ErrNoHash and ErrHashMismatch are wrapped by VerifyModule's two refusals, so that callers can
// tell them apart without matching upstream's texts.
var (
	ErrNoHash       = errors.New("no BLAKE3 hash in meta.json")
	ErrHashMismatch = errors.New("BLAKE3 hash mismatch")
)

// verifyError is a VerifyModule refusal: upstream's text, wrapping ErrNoHash or ErrHashMismatch.
type verifyError struct {
	msg  string
	kind error
}

func (e *verifyError) Error() string { return e.msg }
func (e *verifyError) Unwrap() error { return e.kind }

// VerifyModule checks a store capsule's module bytes against its meta.json, with upstream
// Astrid's refusals: a meta without a hash ("has no BLAKE3 hash in meta.json … Refusing to load
// unverified binary.", wrapping ErrNoHash) and a hash that differs ("integrity check failed … may
// have been tampered with.", wrapping ErrHashMismatch). name is the capsule's package.name.
func VerifyModule(name string, meta *Meta, wasm []byte) error {
	if meta == nil || meta.WasmHash == "" {
		return &verifyError{kind: ErrNoHash, msg: fmt.Sprintf("WASM capsule '%s' has no BLAKE3 hash in meta.json. Capsules must be installed via `astrid-host install` which records the hash. Refusing to load unverified binary.", name)}
	}
	if got := Hash(wasm); got != meta.WasmHash {
		return &verifyError{kind: ErrHashMismatch, msg: fmt.Sprintf("WASM integrity check failed: expected BLAKE3 %s, got %s. The binary may have been tampered with.", meta.WasmHash, got)}
	}
	return nil
}

// WriteMeta writes dir/meta.json (indented JSON, 0600) atomically and durably: a temporary file
// in dir, synced, renamed over meta.json, and dir synced.
func WriteMeta(dir string, m *Meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".meta-*.json")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, MetaName), err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, MetaName))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, MetaName), err)
	}
	return syncDir(dir)
}
