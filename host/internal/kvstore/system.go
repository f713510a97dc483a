package kvstore

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The host keeps its own data (the identity store, persisted approval allowances) in the same
// database as the capsules' entries, so that one state directory has one database, one lock
// and one way of committing: the top-level bucket "system" holds one bucket per area. No
// capsule can reach it: capsule entries live in the bucket "kv", by namespace.
var systemBucket = []byte("system")

// RefusalError is what an update function returns to refuse its write before it has changed
// anything (a record that does not exist, a cap reached): the refusal is that write's answer
// only, and the other writes that share its transaction go ahead. Any other error aborts the
// transaction and is reported as a *StorageError.
type RefusalError struct{ Err error }

func (e *RefusalError) Error() string { return e.Err.Error() }

func (e *RefusalError) Unwrap() error { return e.Err }

// Refuse marks err as a refusal (see RefusalError).
func Refuse(err error) error { return &RefusalError{Err: err} }

// isRefusal reports whether a write's error refuses that write alone.
func isRefusal(err error) bool {
	var qe *QuotaError
	var re *RefusalError
	return errors.As(err, &qe) || errors.As(err, &re)
}

// checkArea refuses an empty area name.
func checkArea(area string) error {
	if area == "" {
		return errors.New("system area: the name is empty")
	}
	return nil
}

// SystemView runs fn in a read transaction with the bucket of the host's area (nil when the area
// holds nothing yet). fn must not keep the bucket's keys or values after it returns: they live
// only as long as the transaction.
func (s *Store) SystemView(area string, fn func(b *bolt.Bucket) error) error {
	if err := checkArea(area); err != nil {
		return err
	}
	var fnErr error
	err := s.db.View(func(tx *bolt.Tx) error {
		fnErr = fn(tx.Bucket(systemBucket).Bucket([]byte(area)))
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return storageError(err)
	}
	return nil
}

// SystemUpdate runs fn in a write transaction with the bucket of the host's area (created if
// need be), and returns once the transaction is committed and synced. size is about how many
// bytes fn writes (it bounds how many writes share a transaction). As with every write, fn may
// run more than once, so it must reset what it reports at its start; it returns a refusal
// (Refuse) before it changes anything.
func (s *Store) SystemUpdate(area string, size int, fn func(b *bolt.Bucket) error) error {
	if err := checkArea(area); err != nil {
		return err
	}
	err := s.write(size, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(systemBucket).CreateBucketIfNotExists([]byte(area))
		if err != nil {
			return fmt.Errorf("system area %s: %w", area, err)
		}
		return fn(b)
	})
	var re *RefusalError
	if errors.As(err, &re) {
		return re.Err
	}
	return err
}
