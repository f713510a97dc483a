package envconfig

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/astrid-go/astrid/host/manifest"
)

// InvalidError is Update's error for a key or value the capsule does not allow (as opposed to a
// file that cannot be read or written).
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }

func (e *InvalidError) Unwrap() error { return e.Err }

// CheckKey checks that key is an [env] key of m that the operator may set: declared, and not
// reserved. The error lists the keys that are.
func CheckKey(m *manifest.Manifest, key string) error {
	if slices.Contains(Reserved, key) {
		return fmt.Errorf("%s is reserved by the host and cannot be configured", key)
	}
	if _, ok := m.Env[key]; ok {
		return nil
	}
	keys := Keys(m)
	if len(keys) == 0 {
		return fmt.Errorf("%q is not an [env] key of capsule %s: it declares none", key, m.ID())
	}
	return fmt.Errorf("%q is not an [env] key of capsule %s; its keys are: %s", key, m.ID(), strings.Join(keys, ", "))
}

// Keys are m's [env] keys the operator may set (reserved ones excluded), in order.
func Keys(m *manifest.Manifest) []string {
	var keys []string
	for k := range m.Env {
		if !slices.Contains(Reserved, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Update changes capsule m's saved values (the file of m's package.name under stateDir, and the
// secret store for its secret keys): each
// key of set gets its value, each key of unset is removed. Every key of set must pass CheckKey
// and its value CheckValue; a key of unset must be an [env] key or one the file holds (a key an
// older version of the capsule declared); an error of these checks is an *InvalidError. Nothing is
// written unless all pass. A file that cannot
// be read (malformed, too large) is not overwritten: the error says so.
func Update(stateDir string, m *manifest.Manifest, set map[string]string, unset []string) error {
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if err := CheckKey(m, k); err != nil {
			return &InvalidError{err}
		}
		if err := CheckValue(k, m.Env[k], set[k]); err != nil {
			return &InvalidError{err}
		}
		if slices.Contains(unset, k) {
			return &InvalidError{fmt.Errorf("%s is both set and unset", k)}
		}
	}
	saved, err := Read(stateDir, m.ID())
	if err != nil {
		return err
	}
	for _, k := range unset {
		if _, ok := saved[k]; ok {
			continue
		}
		if err := CheckKey(m, k); err != nil {
			return &InvalidError{err}
		}
	}
	plain, secrets := splitSecrets(m, set)
	if err := saveSecrets(stateDir, m, secrets, unset); err != nil {
		return err
	}
	values := maps.Clone(saved)
	if values == nil {
		values = map[string]string{}
	}
	maps.Copy(values, plain)
	for _, k := range unset {
		delete(values, k)
	}
	for k := range secrets {
		delete(values, k) // a secret an older version saved here now lives in the secret store
	}
	return write(stateDir, m.ID(), values)
}
