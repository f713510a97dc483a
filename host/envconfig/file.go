// Package envconfig resolves a capsule's [env] values: what its guest reads with config_get and
// astrid_get_config.
//
// The operator's saved values live in STATE/config/env/NAME.env.json, one file per capsule (NAME
// is package.name), in upstream Astrid's format: a JSON object of strings, {"KEY": "value"}. The
// host reads it at every load (restarts included) and resolves each [env] key as upstream does
// (see Resolve): the operator's explicit value for this load, else the saved value, else the
// manifest's default; a key with none of them, or an enum of several values with no saved one, is
// missing, gets "", and is announced in one astrid.v1.onboarding.required event.
//
// `astrid-host config` shows and writes the file (Update), and `astrid-host install` prompts for
// the missing values on a terminal.
package envconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/internal/safefile"
)

// MaxFileBytes bounds a saved configuration file: 1 MiB. A larger one is refused (the capsule
// does not load) before a byte of it is read, and Update refuses to write one.
const MaxFileBytes = 1 << 20

// FileSuffix ends the name of a capsule's configuration file: NAME.env.json.
const FileSuffix = ".env.json"

// Dir is the directory of the saved configuration files: STATE/config/env.
func Dir(stateDir string) string { return filepath.Join(stateDir, "config", "env") }

// Path is the configuration file of the capsule named name: STATE/config/env/NAME.env.json.
func Path(stateDir, name string) string { return filepath.Join(Dir(stateDir), name+FileSuffix) }

// Read returns the saved values of the capsule named name: nil, and no error, when it has no
// file. A file that is not a regular file, is larger than MaxFileBytes, is not valid UTF-8 or is
// not a JSON object of strings is an error naming the file and what is wrong with it.
func Read(stateDir, name string) (map[string]string, error) {
	if err := safefile.CheckName(name); err != nil {
		return nil, err
	}
	path := Path(stateDir, name)
	data, err := safefile.ReadFile(path, MaxFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("saved [env] configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes the content of the configuration file path: a JSON object whose every value is a
// string (upstream's format). Errors name path and the problem.
func Parse(path string, data []byte) (map[string]string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("saved [env] configuration %s %s; it must be a JSON object of strings such as {\"KEY\": \"value\"}: fix the file or remove it", path, fmt.Sprintf(format, args...))
	}
	if !utf8.Valid(data) {
		return nil, bad("is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, bad("is not a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, bad("is not valid JSON (%v)", err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(raw))
	for _, k := range keys {
		var s string
		if v := bytes.TrimSpace(raw[k]); len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return nil, bad("has a value for %q that is %s, not a string", k, jsonKind(raw[k]))
		}
		out[k] = s
	}
	return out, nil
}

// jsonKind names the kind of a JSON value: "a number", "an array", ... .
func jsonKind(v json.RawMessage) string {
	switch b := bytes.TrimSpace(v); {
	case len(b) == 0:
		return "empty"
	case b[0] == '{':
		return "an object"
	case b[0] == '[':
		return "an array"
	case b[0] == 't' || b[0] == 'f':
		return "a boolean"
	case b[0] == 'n':
		return "null"
	default:
		return "a number"
	}
}

// write replaces the configuration file of name with values, atomically: a temporary file in the
// same directory, synced, then renamed over the old one. The file is 0600 and the directories
// STATE/config and STATE/config/env are 0700 (values may be secrets). With no values left the
// file is removed.
func write(stateDir, name string, values map[string]string) error {
	if err := safefile.CheckName(name); err != nil {
		return err
	}
	dir := Dir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save [env] configuration: %w", err)
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("save [env] configuration: %w", err)
		}
	}
	path := Path(stateDir, name)
	if len(values) == 0 {
		if err := safefile.RemoveDurable(path); err != nil {
			return fmt.Errorf("save [env] configuration: %w", err)
		}
		return nil
	}
	data, err := json.MarshalIndent(values, "", "  ") // keys sorted
	if err != nil {
		return fmt.Errorf("save [env] configuration: %w", err)
	}
	data = append(data, '\n')
	if len(data) > MaxFileBytes {
		return fmt.Errorf("save [env] configuration: %s would be %d bytes; the limit is %d bytes", path, len(data), MaxFileBytes)
	}
	if err := safefile.WriteAtomic(path, data); err != nil {
		return fmt.Errorf("save [env] configuration %s: %w", path, err)
	}
	return nil
}
