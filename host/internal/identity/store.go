// Package identity is the host's identity store: Astrid users and the links from platform
// identities (a Discord user id, a Telegram handle) to them, shared by every capsule of the host
// as upstream's kernel-wide KvIdentityStore is. It lives in the host's database (package
// kvstore, STATE/kv.db) in the system area "identity", apart from every capsule's namespace, so
// it survives restarts, and it has upstream's rules and texts (astrid-storage identity.rs):
// platforms are trimmed and lower-cased, platform names and user ids may not be empty or contain
// '/' or NUL, a link needs an existing user and replaces an earlier link of the same platform
// identity.
//
// What upstream leaves unbounded is bounded here, so that no capsule can grow the store without
// limit: each string at most MaxFieldBytes, at most MaxUsers users, MaxLinks links, and
// MaxLinksPerUser links to one user (which bounds what ListLinks returns).
package identity

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/internal/kvstore"
)

// Area is the store's system area in the host's database.
const Area = "identity"

// Limits of the store (upstream has none).
const (
	// MaxFieldBytes bounds a platform, a platform user id, a link method and a display name.
	MaxFieldBytes = 512
	// MaxUsers bounds the users of one host.
	MaxUsers = 65536
	// MaxLinks bounds the links of one host.
	MaxLinks = 65536
	// MaxLinksPerUser bounds the links to one user.
	MaxLinksPerUser = 1024
)

// The caps in force (the constants; tests lower them).
var (
	maxUsers        uint64 = MaxUsers
	maxLinks        uint64 = MaxLinks
	maxLinksPerUser        = MaxLinksPerUser
)

// Buckets inside the area: users by id, links by "platform/platform_user_id", the index of
// links by user ("user_id/platform/platform_user_id"), and the counts of users and links.
var (
	usersBucket  = []byte("users")
	linksBucket  = []byte("links")
	byUserBucket = []byte("links_by_user")
	countsBucket = []byte("counts")
)

// Error is upstream's IdentityError; its text is upstream's ("invalid input: platform must not
// be empty", "user not found: <uuid>", "storage error: ...").
type Error struct {
	Kind ErrorKind
	Msg  string
}

// ErrorKind is which of upstream's IdentityError variants an Error is.
type ErrorKind int

// The variants of upstream's IdentityError.
const (
	InvalidInput ErrorKind = iota
	UserNotFound
	StorageFailure
)

func (e *Error) Error() string {
	switch e.Kind {
	case InvalidInput:
		return "invalid input: " + e.Msg
	case UserNotFound:
		return "user not found: " + e.Msg
	}
	return "storage error: " + e.Msg
}

func invalid(format string, args ...any) error {
	return &Error{Kind: InvalidInput, Msg: fmt.Sprintf(format, args...)}
}

// storageFailure wraps a failure of the database (or a cap reached) as upstream's
// IdentityError::Storage; an *Error passes through.
func storageFailure(err error) error {
	var ie *Error
	if err == nil || errors.As(err, &ie) {
		return err
	}
	return &Error{Kind: StorageFailure, Msg: err.Error()}
}

// User is an Astrid user: upstream's AstridUserId as the identity functions show it.
type User struct {
	ID          string  `json:"id"`
	DisplayName *string `json:"display_name,omitempty"`
	CreatedAt   string  `json:"created_at"`
}

// Link is a platform identity's link to a user: upstream's FrontendLink, with linked_at as
// chrono's to_rfc3339 writes it ("2026-01-02T03:04:05.123456789+00:00").
type Link struct {
	Platform       string `json:"platform"`
	PlatformUserID string `json:"platform_user_id"`
	AstridUserID   string `json:"astrid_user_id"`
	LinkedAt       string `json:"linked_at"`
	Method         string `json:"method"`
}

// Store is the identity store of one host database.
type Store struct{ kv *kvstore.Store }

// New returns the identity store kept in kv.
func New(kv *kvstore.Store) *Store { return &Store{kv: kv} }

// now is the clock of created_at and linked_at (a variable for tests).
var now = time.Now

// rfc3339 is chrono's DateTime<Utc>::to_rfc3339: as the bus writes timestamps, with "+00:00"
// for "Z".
func rfc3339(t time.Time) string {
	b := bus.AppendTimestamp(nil, t)
	return string(b[:len(b)-1]) + "+00:00"
}

// CreateUser creates a user, with displayName if given, and returns it.
func (s *Store) CreateUser(displayName *string) (User, error) {
	if displayName != nil {
		if strings.ContainsAny(*displayName, "/\x00") {
			return User{}, invalid("display_name must not contain '/' or null bytes")
		}
		if err := checkLen("display_name", *displayName); err != nil {
			return User{}, err
		}
	}
	u := User{ID: uuid.New().String(), DisplayName: displayName, CreatedAt: rfc3339(now())}
	rec, err := json.Marshal(u)
	if err != nil {
		return User{}, storageFailure(err)
	}
	err = s.kv.SystemUpdate(Area, len(rec), func(area *bolt.Bucket) error {
		users, counts, err := buckets(area, usersBucket, countsBucket)
		if err != nil {
			return err
		}
		n := readCount(counts, usersBucket)
		if n >= maxUsers {
			return kvstore.Refuse(storageFailure(fmt.Errorf("the identity store holds %d users, the most it may hold", maxUsers)))
		}
		if err := users.Put([]byte(u.ID), rec); err != nil {
			return err
		}
		return writeCount(counts, usersBucket, n+1)
	})
	if err != nil {
		return User{}, storageFailure(err)
	}
	return u, nil
}

// Resolve returns the user the platform identity is linked to, nil when it is not linked (or its
// user no longer exists).
func (s *Store) Resolve(platform, platformUserID string) (*User, error) {
	key, _, err := linkKey(platform, platformUserID)
	if err != nil {
		return nil, err
	}
	var user *User
	err = s.kv.SystemView(Area, func(area *bolt.Bucket) error {
		user = nil
		if area == nil {
			return nil
		}
		l, err := getLink(area, key)
		if err != nil || l == nil {
			return err
		}
		user, err = getUser(area, l.AstridUserID)
		return err
	})
	if err != nil {
		return nil, storageFailure(err)
	}
	return user, nil
}

// Link links the platform identity to the user (an existing one), replacing the identity's
// earlier link, and returns the new link.
func (s *Store) Link(platform, platformUserID string, user uuid.UUID, method string) (Link, error) {
	key, normalized, err := linkKey(platform, platformUserID)
	if err != nil {
		return Link{}, err
	}
	if strings.TrimSpace(method) == "" {
		return Link{}, invalid("method must not be empty")
	}
	if err := checkLen("method", method); err != nil {
		return Link{}, err
	}
	l := Link{Platform: normalized, PlatformUserID: platformUserID, AstridUserID: user.String(), LinkedAt: rfc3339(now()), Method: method}
	rec, err := json.Marshal(l)
	if err != nil {
		return Link{}, storageFailure(err)
	}
	err = s.kv.SystemUpdate(Area, 2*len(key)+len(rec), func(area *bolt.Bucket) error {
		links, byUser, err := buckets(area, linksBucket, byUserBucket)
		if err != nil {
			return err
		}
		counts, err := area.CreateBucketIfNotExists(countsBucket)
		if err != nil {
			return err
		}
		if u, err := getUser(area, l.AstridUserID); err != nil {
			return err
		} else if u == nil {
			return kvstore.Refuse(&Error{Kind: UserNotFound, Msg: l.AstridUserID})
		}
		old, err := getLink(area, key)
		if err != nil {
			return err
		}
		n := readCount(counts, linksBucket)
		switch {
		case old == nil && n >= maxLinks:
			return kvstore.Refuse(storageFailure(fmt.Errorf("the identity store holds %d links, the most it may hold", maxLinks)))
		case old == nil || old.AstridUserID != l.AstridUserID:
			if c := countPrefix(byUser, []byte(l.AstridUserID+"/")); c >= maxLinksPerUser {
				return kvstore.Refuse(storageFailure(fmt.Errorf("user %s has %d links, the most one user may have", l.AstridUserID, maxLinksPerUser)))
			}
		}
		if old != nil {
			if err := byUser.Delete([]byte(old.AstridUserID + "/" + key)); err != nil {
				return err
			}
		} else if err := writeCount(counts, linksBucket, n+1); err != nil {
			return err
		}
		if err := links.Put([]byte(key), rec); err != nil {
			return err
		}
		return byUser.Put([]byte(l.AstridUserID+"/"+key), nil)
	})
	if err != nil {
		return Link{}, storageFailure(err)
	}
	return l, nil
}

// Unlink removes the platform identity's link and reports whether there was one.
func (s *Store) Unlink(platform, platformUserID string) (bool, error) {
	key, _, err := linkKey(platform, platformUserID)
	if err != nil {
		return false, err
	}
	removed := false
	err = s.kv.SystemUpdate(Area, len(key), func(area *bolt.Bucket) error {
		removed = false
		links, byUser, err := buckets(area, linksBucket, byUserBucket)
		if err != nil {
			return err
		}
		counts, err := area.CreateBucketIfNotExists(countsBucket)
		if err != nil {
			return err
		}
		old, err := getLink(area, key)
		if err != nil || old == nil {
			return err
		}
		if err := links.Delete([]byte(key)); err != nil {
			return err
		}
		if err := byUser.Delete([]byte(old.AstridUserID + "/" + key)); err != nil {
			return err
		}
		removed = true
		return writeCount(counts, linksBucket, max(readCount(counts, linksBucket), 1)-1)
	})
	if err != nil {
		return false, storageFailure(err)
	}
	return removed, nil
}

// ListLinks returns the links to the user, in the order of their platform and platform user id
// (upstream's key order), at most MaxLinksPerUser of them.
func (s *Store) ListLinks(user uuid.UUID) ([]Link, error) {
	prefix := []byte(user.String() + "/")
	var out []Link
	err := s.kv.SystemView(Area, func(area *bolt.Bucket) error {
		out = []Link{}
		if area == nil || area.Bucket(byUserBucket) == nil {
			return nil
		}
		c := area.Bucket(byUserBucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			l, err := getLink(area, string(k[len(prefix):]))
			if err != nil {
				return err
			}
			if l != nil && l.AstridUserID == user.String() {
				out = append(out, *l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, storageFailure(err)
	}
	return out, nil
}

// linkKey checks a platform identity as upstream does and returns its key,
// "platform/platform_user_id" with the platform normalised, and the normalised platform.
func linkKey(platform, platformUserID string) (key, normalized string, err error) {
	for _, f := range []struct{ name, value string }{{"platform", platform}, {"platform_user_id", platformUserID}} {
		if strings.TrimSpace(f.value) == "" {
			return "", "", invalid("%s must not be empty", f.name)
		}
		if strings.ContainsAny(f.value, "/\x00") {
			return "", "", invalid("%s must not contain '/' or null bytes", f.name)
		}
		if err := checkLen(f.name, f.value); err != nil {
			return "", "", err
		}
	}
	normalized = NormalizePlatform(platform)
	return normalized + "/" + platformUserID, normalized, nil
}

// NormalizePlatform is upstream's normalize_platform: trimmed, ASCII letters lower-cased.
func NormalizePlatform(p string) string {
	b := []byte(strings.TrimSpace(p))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func checkLen(name, value string) error {
	if len(value) > MaxFieldBytes {
		return invalid("%s must be at most %d bytes, not %d", name, MaxFieldBytes, len(value))
	}
	return nil
}

// buckets returns (creating them if need be) two buckets of the area.
func buckets(area *bolt.Bucket, a, b []byte) (*bolt.Bucket, *bolt.Bucket, error) {
	x, err := area.CreateBucketIfNotExists(a)
	if err != nil {
		return nil, nil, err
	}
	y, err := area.CreateBucketIfNotExists(b)
	if err != nil {
		return nil, nil, err
	}
	return x, y, nil
}

func getUser(area *bolt.Bucket, id string) (*User, error) {
	return getRecord[User](area, usersBucket, id)
}

func getLink(area *bolt.Bucket, key string) (*Link, error) {
	return getRecord[Link](area, linksBucket, key)
}

// getRecord reads the JSON record under key in the area's bucket, nil when there is none.
func getRecord[T any](area *bolt.Bucket, bucket []byte, key string) (*T, error) {
	b := area.Bucket(bucket)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	var r T
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%s %s: %w", bucket, key, err)
	}
	return &r, nil
}

func countPrefix(b *bolt.Bucket, prefix []byte) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
		n++
	}
	return n
}

func readCount(counts *bolt.Bucket, name []byte) uint64 {
	v := counts.Get(name)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func writeCount(counts *bolt.Bucket, name []byte, n uint64) error {
	return counts.Put(name, binary.BigEndian.AppendUint64(nil, n))
}
