// Package principal owns the rule for principal ids (upstream's PrincipalId): which strings may
// name a principal, and so a KV namespace, a home directory under STATE/home and the owner of
// spawned processes.
package principal

import (
	"errors"
	"fmt"
)

// MaxBytes bounds a principal id: 64 characters, as upstream's PrincipalId.
const MaxBytes = 64

// Check checks a principal id with upstream's rule (1–64 characters of [A-Za-z0-9_-]) and words.
func Check(id string) error {
	switch {
	case id == "":
		return errors.New("principal id must not be empty")
	case len(id) > MaxBytes:
		return errors.New("principal id exceeds 64 characters")
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("principal id contains invalid character %q (allowed: a-z, A-Z, 0-9, -, _)", c)
		}
	}
	return nil
}

// Valid reports whether id is a principal id (Check accepts it).
func Valid(id string) bool { return Check(id) == nil }
