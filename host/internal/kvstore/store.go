// Package kvstore is the capsules' key-value store: one bbolt database, STATE/kv.db, that the
// host owns. Entries live in namespaces "{principal}:capsule:{capsule}" (upstream's
// ScopedKvStore); each capsule's keys and values are counted against its quota, and the count is
// kept in the database so that it survives restarts. Every write is one committed, fsynced
// transaction before it is acknowledged: a host killed in the middle of writes loses none it
// acknowledged and leaves none torn. Concurrent writers share transactions (group commit), so a
// burst of writes costs one fsync rather than one each.
package kvstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the database: entriesBucket holds one bucket per namespace (named by
// Namespace.String) with the namespace's keys and values; usageBucket holds each capsule's
// usage, the bytes of its keys and values across its namespaces, as a big-endian uint64.
var (
	entriesBucket = []byte("kv")
	usageBucket   = []byte("usage")
)

// Namespace is the scope of a capsule's entries for one principal: upstream's
// "{principal}:capsule:{capsule}". A capsule's quota covers all its namespaces.
type Namespace struct {
	Principal string
	Capsule   string
}

// String is the namespace's name, as upstream writes it.
func (n Namespace) String() string { return n.Principal + ":capsule:" + n.Capsule }

// check refuses a namespace upstream refuses (empty, or with a NUL byte), and a capsule id that
// is empty or contains ':' (a capsule id never does; the namespace would be ambiguous).
func (n Namespace) check() error {
	switch {
	case n.Principal == "" || n.Capsule == "":
		return invalidKey("namespace must not be empty")
	case strings.ContainsRune(n.String(), 0):
		return invalidKey("namespace must not contain null bytes")
	case strings.ContainsRune(n.Capsule, ':'):
		return invalidKey("capsule id must not contain ':'")
	}
	return nil
}

// InvalidKeyError is upstream's StorageError::InvalidKey: an empty key, or a key, prefix or
// namespace with a NUL byte. Its text is upstream's ("invalid key: key must not be empty").
type InvalidKeyError struct{ Reason string }

func (e *InvalidKeyError) Error() string { return "invalid key: " + e.Reason }

func invalidKey(reason string) error { return &InvalidKeyError{Reason: reason} }

// checkKey refuses what upstream's validate_key refuses.
func checkKey(key string) error {
	switch {
	case key == "":
		return invalidKey("key must not be empty")
	case strings.ContainsRune(key, 0):
		return invalidKey("key must not contain null bytes")
	}
	return nil
}

// QuotaError refuses a write that would take a capsule's keys and values past its quota.
type QuotaError struct {
	Capsule string
	Quota   uint64 // the capsule's [limits] kv_bytes
	Usage   uint64 // the bytes it uses now
	Would   uint64 // the bytes it would use after the write
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("quota exceeded: capsule %s would use %d bytes of KV storage (keys and values, now %d), more than its [limits] kv_bytes of %d bytes",
		e.Capsule, e.Would, e.Usage, e.Quota)
}

// Entry size: what one entry counts against its capsule's quota, its key and value bytes.
func entrySize(key string, value []byte) uint64 { return uint64(len(key)) + uint64(len(value)) }

// Get returns the value of key in ns, and whether it exists.
func (s *Store) Get(ns Namespace, key string) ([]byte, bool, error) {
	if err := ns.check(); err != nil {
		return nil, false, err
	}
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	var value []byte
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := namespaceBucket(tx, ns)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			value, found = append([]byte{}, v...), true // v lives only as long as tx
		}
		return nil
	})
	if err != nil {
		return nil, false, storageError(err)
	}
	return value, found, nil
}

// ListKeys calls fn with each key of ns that starts with prefix, in byte order, and stops at
// fn's first error, which it returns. fn runs inside a read transaction: it must not write.
func (s *Store) ListKeys(ns Namespace, prefix string, fn func(key string) error) error {
	if err := ns.check(); err != nil {
		return err
	}
	var fnErr error
	err := s.db.View(func(tx *bolt.Tx) error {
		b := namespaceBucket(tx, ns)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		p := []byte(prefix)
		for k, _ := c.Seek(p); k != nil && hasPrefix(k, p); k, _ = c.Next() {
			if fnErr = fn(string(k)); fnErr != nil {
				return fnErr
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return storageError(err)
	}
	return nil
}

// Set stores value under key in ns, unless that takes the capsule's usage past quota (a write
// that does not grow the usage is allowed even over quota, so a capsule whose quota was lowered
// can still shrink its data). It returns once the write is committed and synced.
func (s *Store) Set(ns Namespace, key string, value []byte, quota uint64) error {
	if err := ns.check(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	return s.write(len(key)+len(value), func(tx *bolt.Tx) error {
		var old uint64
		if b := namespaceBucket(tx, ns); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				old = entrySize(key, v)
			}
		}
		usage := readUsage(tx, ns.Capsule)
		next := minus(usage, old) + entrySize(key, value)
		if next > quota && next > usage {
			return &QuotaError{Capsule: ns.Capsule, Quota: quota, Usage: usage, Would: next}
		}
		b, err := tx.Bucket(entriesBucket).CreateBucketIfNotExists([]byte(ns.String()))
		if err != nil {
			return err
		}
		if err := b.Put([]byte(key), value); err != nil {
			return err
		}
		return writeUsage(tx, ns.Capsule, next)
	})
}

// Delete removes key from ns and reports whether it existed. It returns once the deletion is
// committed and synced.
func (s *Store) Delete(ns Namespace, key string) (bool, error) {
	if err := ns.check(); err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	existed := false
	err := s.write(len(key), func(tx *bolt.Tx) error {
		existed = false // the function may run again (see write)
		b := namespaceBucket(tx, ns)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		size := entrySize(key, v)
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		existed = true
		return writeUsage(tx, ns.Capsule, minus(readUsage(tx, ns.Capsule), size))
	})
	return existed, err
}

// ClearPrefix removes every key of ns that starts with prefix (all of them for "") in one
// transaction and returns how many there were. It returns once the deletion is committed and
// synced.
func (s *Store) ClearPrefix(ns Namespace, prefix string) (uint64, error) {
	if err := ns.check(); err != nil {
		return 0, err
	}
	if strings.ContainsRune(prefix, 0) {
		return 0, invalidKey("prefix must not contain null bytes")
	}
	var count uint64
	err := s.write(len(prefix), func(tx *bolt.Tx) error {
		count = 0
		b := namespaceBucket(tx, ns)
		if b == nil {
			return nil
		}
		// Collect first: deleting under a cursor can skip the entry after each deleted one.
		var keys [][]byte
		var size uint64
		c := b.Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && hasPrefix(k, p); k, v = c.Next() {
			keys = append(keys, append([]byte{}, k...))
			size += uint64(len(k)) + uint64(len(v))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		count = uint64(len(keys))
		if count == 0 {
			return nil
		}
		return writeUsage(tx, ns.Capsule, minus(readUsage(tx, ns.Capsule), size))
	})
	return count, err
}

// Usage is the bytes of keys and values the capsule stores, across its namespaces.
func (s *Store) Usage(capsule string) (uint64, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = readUsage(tx, capsule)
		return nil
	})
	if err != nil {
		return 0, storageError(err)
	}
	return n, nil
}

// namespaceBucket is ns's bucket, nil before its first entry.
func namespaceBucket(tx *bolt.Tx, ns Namespace) *bolt.Bucket {
	return tx.Bucket(entriesBucket).Bucket([]byte(ns.String()))
}

func readUsage(tx *bolt.Tx, capsule string) uint64 {
	v := tx.Bucket(usageBucket).Get([]byte(capsule))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func writeUsage(tx *bolt.Tx, capsule string, n uint64) error {
	b := tx.Bucket(usageBucket)
	if n == 0 {
		return b.Delete([]byte(capsule))
	}
	return b.Put([]byte(capsule), binary.BigEndian.AppendUint64(nil, n))
}

// minus is a-b, 0 when b > a (a usage is never less than what it counts, but a count gone wrong
// must not wrap round to a huge usage).
func minus(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// StorageError is a failure of the database itself (upstream's StorageError::Internal).
type StorageError struct{ Err error }

func (e *StorageError) Error() string { return "storage error: " + e.Err.Error() }

func (e *StorageError) Unwrap() error { return e.Err }

// storageError wraps a database failure, once.
func storageError(err error) error {
	var se *StorageError
	if err == nil || errors.As(err, &se) {
		return err
	}
	return &StorageError{Err: err}
}
