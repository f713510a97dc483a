package kvstore

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// LockTimeout is how long Open waits for the file lock another process holds: 500 ms, so a
// second host on the same state directory is told at once rather than left hanging.
const LockTimeout = 500 * time.Millisecond

// Batching of concurrent writes (see commitLoop): one transaction takes at most maxBatchWrites
// writes and, beyond its first write, maxBatchBytes of keys and values.
const (
	maxBatchWrites = 1024
	maxBatchBytes  = 64 << 20
)

// ErrLocked is Open's error when another process holds the database's lock.
var ErrLocked = errors.New("the database is locked by another process")

// ErrClosed is the error of a write after Close.
var ErrClosed = errors.New("the KV store is closed")

// Store is an open KV database. Its methods are safe for concurrent use.
type Store struct {
	db *bolt.DB

	// writes carries write requests to commitLoop; closed by Close under mu, which senders hold
	// for reading while they send.
	writes  chan *writeReq
	mu      sync.RWMutex
	closed  bool
	stopped chan struct{} // closed when commitLoop has returned
}

// writeReq is one write waiting for its transaction: apply makes it in tx, size is the bytes it
// writes, and done receives its outcome once the transaction is committed and synced.
type writeReq struct {
	apply func(tx *bolt.Tx) error
	size  int
	done  chan error
}

// Open opens (creating it if need be, mode 0600) the database at path, waiting at most
// LockTimeout for another process's lock (ErrLocked). Every commit is synced to disk.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{entriesBucket, usageBucket, systemBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, writes: make(chan *writeReq, maxBatchWrites), stopped: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// Close waits for the writes under way, then closes the database and releases its lock.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.writes)
	s.mu.Unlock()
	<-s.stopped
	return s.db.Close()
}

// write makes one write in a transaction that is committed and synced before it returns; apply
// may run more than once (a shared transaction that fails is retried write by write), so it
// must reset what it reports at its start. apply returns a refusal (a *QuotaError or a
// *RefusalError, see isRefusal) before it changes anything; any other error aborts its
// transaction.
func (s *Store) write(size int, apply func(tx *bolt.Tx) error) error {
	req := &writeReq{apply: apply, size: size, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.writes <- req
	s.mu.RUnlock()
	return <-req.done
}

// commitLoop is group commit: it takes the first waiting write and every other one already
// waiting (up to maxBatchWrites and maxBatchBytes) and commits them in one transaction, so a
// lone write waits for no one and a burst of concurrent writes shares one fsync. Each write is
// acknowledged only after its transaction is committed and synced.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	var carry *writeReq // a write that did not fit the previous batch
	for {
		first := carry
		carry = nil
		if first == nil {
			r, ok := <-s.writes
			if !ok {
				return
			}
			first = r
		}
		batch, bytes := []*writeReq{first}, first.size
	drain:
		for len(batch) < maxBatchWrites {
			select {
			case r, ok := <-s.writes:
				if !ok {
					break drain
				}
				if bytes+r.size > maxBatchBytes {
					carry = r
					break drain
				}
				batch, bytes = append(batch, r), bytes+r.size
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit makes batch's writes in one transaction and acknowledges each. A write that is refused
// is that write's error only; a write that fails the transaction, or a commit that fails, makes
// commit retry the writes one by one so that a failure is only its own write's.
func (s *Store) commit(batch []*writeReq) {
	errs := make([]error, len(batch))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, r := range batch {
			err := r.apply(tx)
			if err != nil && !isRefusal(err) {
				return err
			}
			errs[i] = err
		}
		return nil
	})
	switch {
	case err == nil:
		for i, r := range batch {
			r.done <- errs[i]
		}
	case len(batch) == 1:
		batch[0].done <- storageError(err)
	default:
		for _, r := range batch {
			s.commit([]*writeReq{r})
		}
	}
}
