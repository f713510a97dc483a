// Package secretstore keeps the secrets of capsules: the values of their `secret` [env] keys
// and what their install hooks collect with astrid_elicit of type secret.
//
// Secrets are kept apart from the capsule's KV (kv.db) and from its saved [env] configuration:
// one file per capsule, STATE/secrets/NAME.json (NAME = package.name), a JSON object of strings
// {"KEY": "value"}, mode 0600 in a 0700 directory, so only the host's user reads them. Writes are
// atomic (a temporary file, synced, renamed over the old one); reads are bounded (MaxFileBytes)
// and refuse anything but a regular file. A capsule reaches only its own file: the host names the
// file from the instance's manifest, never from the guest's input.
//
// Nothing in this package logs, and no error it returns contains a secret's value.
package secretstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/internal/safefile"
)

// MaxFileBytes bounds one capsule's secrets file: 1 MiB. A larger one is refused before a byte
// of it is read, and Set refuses to write one.
const MaxFileBytes = 1 << 20

// MaxKeyBytes bounds a secret's key: 4 KiB (upstream's MAX_KEY_LEN).
const MaxKeyBytes = 4 << 10

// Dir is the directory of the secrets files: STATE/secrets.
func Dir(stateDir string) string { return filepath.Join(stateDir, "secrets") }

// Path is the secrets file of the capsule named name: STATE/secrets/NAME.json.
func Path(stateDir, name string) string { return filepath.Join(Dir(stateDir), name+".json") }

// mu serialises the read-modify-write of Set and Delete within the process.
var mu sync.Mutex

// CheckKey checks a secret's key: not empty, valid UTF-8, at most MaxKeyBytes.
func CheckKey(key string) error {
	switch {
	case key == "":
		return errors.New("a secret's key must not be empty")
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("a secret's key is %d bytes; the limit is %d bytes", len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return errors.New("a secret's key must be valid UTF-8")
	}
	return nil
}

// All returns every secret of the capsule named name: nil, and no error, when it has none. A
// file that is not a regular file, is larger than MaxFileBytes or is not a JSON object of
// strings is an error naming the file (never its content).
func All(stateDir, name string) (map[string]string, error) {
	if err := safefile.CheckName(name); err != nil {
		return nil, err
	}
	path := Path(stateDir, name)
	data, err := safefile.ReadFile(path, MaxFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret store: %w", err)
	}
	var values map[string]string
	if err := json.Unmarshal(data, &values); err != nil || values == nil {
		return nil, fmt.Errorf("secret store: %s is not a JSON object of strings such as {\"KEY\": \"value\"}: fix the file or remove it", path)
	}
	return values, nil
}

// Get returns the secret key of the capsule named name; ok is false when it has none.
func Get(stateDir, name, key string) (value string, ok bool, err error) {
	all, err := All(stateDir, name)
	if err != nil {
		return "", false, err
	}
	value, ok = all[key]
	return value, ok, nil
}

// Exists reports whether the capsule named name has the secret key.
func Exists(stateDir, name, key string) (bool, error) {
	_, ok, err := Get(stateDir, name, key)
	return ok, err
}

// Set stores secrets (key → value) for the capsule named name, keeping its others. Every key must
// pass CheckKey and every value be valid UTF-8; nothing is written unless all do.
func Set(stateDir, name string, secrets map[string]string) error {
	for k, v := range secrets {
		if err := CheckKey(k); err != nil {
			return err
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("the secret %s is not valid UTF-8", k)
		}
	}
	return update(stateDir, name, func(values map[string]string) { maps.Copy(values, secrets) })
}

// Delete removes the secrets keys of the capsule named name (a key it does not have is no error).
func Delete(stateDir, name string, keys ...string) error {
	return update(stateDir, name, func(values map[string]string) {
		for _, k := range keys {
			delete(values, k)
		}
	})
}

func update(stateDir, name string, change func(map[string]string)) error {
	mu.Lock()
	defer mu.Unlock()
	values, err := All(stateDir, name)
	if err != nil {
		return err
	}
	if values == nil {
		values = map[string]string{}
	}
	change(values)
	return write(stateDir, name, values)
}

// write replaces the secrets file of name with values, atomically; with none left the file is
// removed.
func write(stateDir, name string, values map[string]string) error {
	dir := Dir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	path := Path(stateDir, name)
	if len(values) == 0 {
		if err := safefile.RemoveDurable(path); err != nil {
			return fmt.Errorf("secret store: %w", err)
		}
		return nil
	}
	data, err := json.Marshal(values)
	if err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	if len(data) > MaxFileBytes {
		return fmt.Errorf("secret store: %s would be %d bytes; the limit is %d bytes", path, len(data), MaxFileBytes)
	}
	if err := safefile.WriteAtomic(path, data); err != nil {
		return fmt.Errorf("secret store: save %s: %w", path, err)
	}
	return nil
}
