package identity

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/astrid-go/astrid/host/internal/kvstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openStore opens a fresh database in a temporary directory, closed when the test ends.
func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kv.db")
	kv, err := kvstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	return New(kv), path
}

func ptr(s string) *string { return &s }

var rfc3339Offset = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$`)

func TestLifecycle(t *testing.T) {
	s, _ := openStore(t)
	alice, err := s.CreateUser(ptr("Alice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(alice.ID); err != nil || alice.ID != strings.ToLower(alice.ID) {
		t.Fatalf("user id %q is not a canonical UUID", alice.ID)
	}
	l, err := s.Link("  DISCORD ", "123", uuid.MustParse(alice.ID), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if l.Platform != "discord" || l.PlatformUserID != "123" || l.AstridUserID != alice.ID || l.Method != "admin" || !rfc3339Offset.MatchString(l.LinkedAt) {
		t.Fatalf("link = %+v", l)
	}
	u, err := s.Resolve("Discord", "123")
	if err != nil || u == nil || u.ID != alice.ID || u.DisplayName == nil || *u.DisplayName != "Alice" {
		t.Fatalf("resolve = %+v, %v", u, err)
	}
	if _, err := s.Link("telegram", "alice", uuid.MustParse(alice.ID), "chat_command"); err != nil {
		t.Fatal(err)
	}
	links, err := s.ListLinks(uuid.MustParse(alice.ID))
	if err != nil || len(links) != 2 || links[0].Platform != "discord" || links[1].Platform != "telegram" {
		t.Fatalf("links = %+v, %v", links, err)
	}
	// Re-linking moves the identity to another user (upstream's upsert).
	bob, _ := s.CreateUser(nil)
	if _, err := s.Link("discord", "123", uuid.MustParse(bob.ID), "admin"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Resolve("discord", "123"); u == nil || u.ID != bob.ID || u.DisplayName != nil {
		t.Fatalf("after relink, resolve = %+v", u)
	}
	if links, _ := s.ListLinks(uuid.MustParse(alice.ID)); len(links) != 1 {
		t.Fatalf("alice keeps %d links, want 1", len(links))
	}
	for _, want := range []bool{true, false} {
		if removed, err := s.Unlink("DISCORD", "123"); err != nil || removed != want {
			t.Fatalf("unlink = %v, %v; want %v", removed, err, want)
		}
	}
	if u, _ := s.Resolve("discord", "123"); u != nil {
		t.Fatalf("resolve after unlink = %+v", u)
	}
}

func TestRefusals(t *testing.T) {
	s, _ := openStore(t)
	u, _ := s.CreateUser(nil)
	id := uuid.MustParse(u.ID)
	long := strings.Repeat("x", MaxFieldBytes+1)
	ghost := uuid.MustParse("6f1c2b3a-0000-4000-8000-000000000001")
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"empty platform", func() error { _, err := s.Resolve(" \t", "1"); return err }, "invalid input: platform must not be empty"},
		{"empty user id", func() error { _, err := s.Resolve("discord", ""); return err }, "invalid input: platform_user_id must not be empty"},
		{"slash in platform", func() error { _, err := s.Unlink("dis/cord", "1"); return err }, "invalid input: platform must not contain '/' or null bytes"},
		{"NUL in user id", func() error { _, err := s.Link("discord", "1\x00", id, "m"); return err }, "invalid input: platform_user_id must not contain '/' or null bytes"},
		{"empty method", func() error { _, err := s.Link("discord", "1", id, " "); return err }, "invalid input: method must not be empty"},
		{"unknown user", func() error { _, err := s.Link("discord", "1", ghost, "m"); return err }, "user not found: " + ghost.String()},
		{"slash in display name", func() error { _, err := s.CreateUser(ptr("a/b")); return err }, "invalid input: display_name must not contain '/' or null bytes"},
		{"long platform", func() error { _, err := s.Resolve(long, "1"); return err }, "invalid input: platform must be at most 512 bytes, not 513"},
		{"long user id", func() error { _, err := s.Link("discord", long, id, "m"); return err }, "invalid input: platform_user_id must be at most 512 bytes, not 513"},
		{"long method", func() error { _, err := s.Link("discord", "1", id, long); return err }, "invalid input: method must be at most 512 bytes, not 513"},
		{"long display name", func() error { _, err := s.CreateUser(&long); return err }, "invalid input: display_name must be at most 512 bytes, not 513"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCaps(t *testing.T) {
	defer func(u, l uint64, p int) { maxUsers, maxLinks, maxLinksPerUser = u, l, p }(maxUsers, maxLinks, maxLinksPerUser)
	maxUsers, maxLinks, maxLinksPerUser = 2, 3, 2
	s, _ := openStore(t)
	a, _ := s.CreateUser(nil)
	b, _ := s.CreateUser(nil)
	if _, err := s.CreateUser(nil); err == nil || err.Error() != "storage error: the identity store holds 2 users, the most it may hold" {
		t.Fatalf("third user: %v", err)
	}
	ida, idb := uuid.MustParse(a.ID), uuid.MustParse(b.ID)
	for _, p := range []string{"p1", "p2"} {
		if _, err := s.Link(p, "x", ida, "m"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Link("p3", "x", ida, "m"); err == nil || !strings.Contains(err.Error(), "links, the most one user may have") {
		t.Fatalf("third link of one user: %v", err)
	}
	// Re-linking an identity to the same user is not a new link.
	if _, err := s.Link("p1", "x", ida, "again"); err != nil {
		t.Fatalf("relink: %v", err)
	}
	if _, err := s.Link("p3", "x", idb, "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Link("p4", "x", idb, "m"); err == nil || err.Error() != "storage error: the identity store holds 3 links, the most it may hold" {
		t.Fatalf("fourth link: %v", err)
	}
	if removed, _ := s.Unlink("p3", "x"); !removed {
		t.Fatal("unlink p3")
	}
	if _, err := s.Link("p4", "x", idb, "m"); err != nil {
		t.Fatalf("a link after an unlink: %v", err)
	}
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	kv, err := kvstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := New(kv).CreateUser(ptr("Carol"))
	if _, err := New(kv).Link("matrix", "@carol", uuid.MustParse(u.ID), "system"); err != nil {
		t.Fatal(err)
	}
	kv.Close()
	kv, err = kvstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	got, err := New(kv).Resolve("matrix", "@carol")
	if err != nil || got == nil || got.ID != u.ID {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

func TestParseUUID(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "67e55044-10b1-426f-9247-bb680e5fe0c8", want: "67e55044-10b1-426f-9247-bb680e5fe0c8"},
		{in: "67E55044-10B1-426F-9247-BB680E5FE0C8", want: "67e55044-10b1-426f-9247-bb680e5fe0c8"},
		{in: "67e5504410b1426f9247bb680e5fe0c8", want: "67e55044-10b1-426f-9247-bb680e5fe0c8"},
		{in: "{67e55044-10b1-426f-9247-bb680e5fe0c8}", want: "67e55044-10b1-426f-9247-bb680e5fe0c8"},
		{in: "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8", want: "67e55044-10b1-426f-9247-bb680e5fe0c8"},
		{in: "", err: "invalid length: expected length 32 for simple format, found 0"},
		{in: "abc", err: "invalid length: expected length 32 for simple format, found 3"},
		{in: "not-a-uuid", err: "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 1"},
		{in: "67e55044-10b1-426f-9247", err: "invalid group count: expected 5, found 4"},
		{in: "67e5504-410b1-426f-9247-bb680e5fe0c8", err: "invalid group length in group 0: expected 8, found 7"},
		{in: "67e55044-10b1-426f-9247-bb680e5fe0c", err: "invalid group length in group 4: expected 12, found 11"},
		{in: "67e55044-10b1-426f-9247-bb680e5fe0cé", err: "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `é` at 36"},
		{in: "\xff", err: "non-UTF8 input"},
		{in: "URN:UUID:67e55044-10b1-426f-9247-bb680e5fe0c8", err: "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `U` at 1"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseUUID(tc.in)
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("ParseUUID(%q) error = %v, want %q", tc.in, err, tc.err)
			case tc.err == "" && (err != nil || u.String() != tc.want):
				t.Fatalf("ParseUUID(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
			}
		})
	}
}
