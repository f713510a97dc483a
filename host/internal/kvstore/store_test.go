package kvstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	alice = Namespace{Principal: "default", Capsule: "alice"}
	bob   = Namespace{Principal: "default", Capsule: "bob"}
	// aliceForCarol is capsule alice acting for principal carol: another namespace, the same
	// quota.
	aliceForCarol = Namespace{Principal: "carol", Capsule: "alice"}
)

const noQuota = 1 << 40

func keys(t *testing.T, s *Store, ns Namespace, prefix string) []string {
	t.Helper()
	got := []string{}
	if err := s.ListKeys(ns, prefix, func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOperations(t *testing.T) {
	s := openTemp(t)
	for _, kv := range [][2]string{{"react.turn.abc", "1"}, {"react.turn.def", "2"}, {"react.req2sess.xyz", "3"}, {"session.data.abc", "4"}, {"empty", ""}} {
		if err := s.Set(alice, kv[0], []byte(kv[1]), noQuota); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(bob, "react.turn.abc", []byte("bob's"), noQuota); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(aliceForCarol, "react.turn.abc", []byte("carol's"), noQuota); err != nil {
		t.Fatal(err)
	}

	t.Run("get", func(t *testing.T) {
		for _, tt := range []struct {
			ns        Namespace
			key, want string
			found     bool
		}{
			{alice, "react.turn.abc", "1", true},
			{bob, "react.turn.abc", "bob's", true},
			{aliceForCarol, "react.turn.abc", "carol's", true},
			{alice, "empty", "", true},
			{alice, "missing", "", false},
			{Namespace{"nobody", "alice"}, "react.turn.abc", "", false},
		} {
			v, found, err := s.Get(tt.ns, tt.key)
			if err != nil || string(v) != tt.want || found != tt.found {
				t.Errorf("Get(%v, %q) = %q, %v, %v; want %q, %v", tt.ns, tt.key, v, found, err, tt.want, tt.found)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		for _, tt := range []struct {
			prefix string
			want   []string
		}{
			{"react.turn.", []string{"react.turn.abc", "react.turn.def"}},
			{"react.", []string{"react.req2sess.xyz", "react.turn.abc", "react.turn.def"}},
			{"", []string{"empty", "react.req2sess.xyz", "react.turn.abc", "react.turn.def", "session.data.abc"}},
			{"nothing", []string{}},
			{"a\x00", []string{}},
		} {
			if got := keys(t, s, alice, tt.prefix); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListKeys(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		}
		stop := errors.New("enough")
		n := 0
		err := s.ListKeys(alice, "", func(string) error { n++; return stop })
		if err != stop || n != 1 {
			t.Errorf("ListKeys stopped by its callback: %v after %d keys, want %v after 1", err, n, stop)
		}
	})
	t.Run("delete", func(t *testing.T) {
		for _, tt := range []struct {
			key  string
			want bool
		}{{"session.data.abc", true}, {"session.data.abc", false}, {"never", false}} {
			if got, err := s.Delete(alice, tt.key); err != nil || got != tt.want {
				t.Errorf("Delete(%q) = %v, %v; want %v", tt.key, got, err, tt.want)
			}
		}
	})
	t.Run("clear prefix", func(t *testing.T) {
		for _, tt := range []struct {
			prefix string
			want   uint64
			left   []string
		}{
			{"react.turn.", 2, []string{"empty", "react.req2sess.xyz"}},
			{"nope.", 0, []string{"empty", "react.req2sess.xyz"}},
			{"", 2, []string{}},
		} {
			n, err := s.ClearPrefix(alice, tt.prefix)
			if err != nil || n != tt.want {
				t.Errorf("ClearPrefix(%q) = %d, %v; want %d", tt.prefix, n, err, tt.want)
			}
			if got := keys(t, s, alice, ""); !reflect.DeepEqual(got, tt.left) {
				t.Errorf("after ClearPrefix(%q): keys %q, want %q", tt.prefix, got, tt.left)
			}
		}
		for _, ns := range []Namespace{bob, aliceForCarol} {
			if got := keys(t, s, ns, ""); !reflect.DeepEqual(got, []string{"react.turn.abc"}) {
				t.Errorf("another namespace %v was touched: %q", ns, got)
			}
		}
	})
}

func TestInvalidKeys(t *testing.T) {
	s := openTemp(t)
	for _, tt := range []struct {
		name string
		op   func() error
		want string
	}{
		{"get empty", func() error { _, _, err := s.Get(alice, ""); return err }, "invalid key: key must not be empty"},
		{"set empty", func() error { return s.Set(alice, "", []byte("v"), noQuota) }, "invalid key: key must not be empty"},
		{"delete empty", func() error { _, err := s.Delete(alice, ""); return err }, "invalid key: key must not be empty"},
		{"set NUL", func() error { return s.Set(alice, "a\x00b", []byte("v"), noQuota) }, "invalid key: key must not contain null bytes"},
		{"get NUL", func() error { _, _, err := s.Get(alice, "\x00"); return err }, "invalid key: key must not contain null bytes"},
		{"clear NUL prefix", func() error { _, err := s.ClearPrefix(alice, "p\x00"); return err }, "invalid key: prefix must not contain null bytes"},
		{"empty principal", func() error { return s.Set(Namespace{"", "alice"}, "k", nil, noQuota) }, "invalid key: namespace must not be empty"},
		{"NUL principal", func() error { return s.Set(Namespace{"a\x00", "alice"}, "k", nil, noQuota) }, "invalid key: namespace must not contain null bytes"},
		{"capsule with colon", func() error { return s.Set(Namespace{"p", "a:b"}, "k", nil, noQuota) }, "invalid key: capsule id must not contain ':'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			var ik *InvalidKeyError
			if !errors.As(err, &ik) || err.Error() != tt.want {
				t.Errorf("error %v, want an InvalidKeyError %q", err, tt.want)
			}
		})
	}
}

func TestUsageIsExactAndSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		op   func() error
		want uint64
	}{
		{"set", func() error { return s.Set(alice, "key", []byte("12345"), noQuota) }, 3 + 5},
		{"overwrite longer", func() error { return s.Set(alice, "key", []byte("1234567890"), noQuota) }, 3 + 10},
		{"another principal", func() error { return s.Set(aliceForCarol, "k2", []byte("xy"), noQuota) }, 13 + 4},
		{"another capsule", func() error { return s.Set(bob, "bobkey", []byte("zzzz"), noQuota) }, 17},
		{"overwrite shorter", func() error { return s.Set(alice, "key", nil, noQuota) }, 3 + 4},
		{"delete missing", func() error { _, err := s.Delete(alice, "nope"); return err }, 7},
		{"delete", func() error { _, err := s.Delete(aliceForCarol, "k2"); return err }, 3},
		{"set two", func() error {
			if err := s.Set(alice, "p.a", []byte("1"), noQuota); err != nil {
				return err
			}
			return s.Set(alice, "p.b", []byte("22"), noQuota)
		}, 3 + 4 + 5},
		{"clear prefix", func() error { _, err := s.ClearPrefix(alice, "p."); return err }, 3},
	}
	for _, st := range steps {
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, err := s.Usage("alice"); err != nil || got != st.want {
			t.Fatalf("after %s: usage %d, %v; want %d", st.name, got, err, st.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for capsule, want := range map[string]uint64{"alice": 3, "bob": 10} {
		if got, err := s.Usage(capsule); err != nil || got != want {
			t.Errorf("after reopening: usage of %s %d, %v; want %d", capsule, got, err, want)
		}
	}
	if v, ok, err := s.Get(alice, "key"); err != nil || !ok || len(v) != 0 {
		t.Errorf("after reopening: Get = %q, %v, %v", v, ok, err)
	}
}

func TestQuota(t *testing.T) {
	s := openTemp(t)
	const quota = 100
	// 90 bytes in two namespaces of the capsule: the quota spans them.
	if err := s.Set(alice, "a", make([]byte, 49), quota); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(aliceForCarol, "b", make([]byte, 39), quota); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		ns      Namespace
		key     string
		size    int
		quota   uint64
		refused string
	}{
		{"exactly the quota", alice, "c", 9, quota, ""},
		{"one byte over", alice, "d", 0, quota, "quota exceeded: capsule alice would use 101 bytes of KV storage (keys and values, now 100), more than its [limits] kv_bytes of 100 bytes"},
		{"growing an entry over", aliceForCarol, "b", 40, quota, "would use 101 bytes"},
		{"same size at the quota", alice, "c", 9, quota, ""},
		{"another capsule is not counted", bob, "x", 99, quota, ""},
		{"over a lowered quota, shrinking is allowed", alice, "a", 10, 50, ""},
		{"over a lowered quota, growing is not", alice, "c", 10, 50, "would use 62 bytes of KV storage (keys and values, now 61), more than its [limits] kv_bytes of 50 bytes"},
		{"a zero quota refuses any growth", Namespace{"default", "zero"}, "k", 0, 0, "quota exceeded: capsule zero would use 1 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Usage(tt.ns.Capsule)
			err := s.Set(tt.ns, tt.key, make([]byte, tt.size), tt.quota)
			after, _ := s.Usage(tt.ns.Capsule)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var qe *QuotaError
			if !errors.As(err, &qe) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("error %v, want a QuotaError with %q", err, tt.refused)
			}
			if after != before {
				t.Errorf("a refused write changed the usage from %d to %d", before, after)
			}
		})
	}
}

// TestConcurrentWritersLoseNothing: many goroutines writing at once (so that writes share
// transactions) lose no write, and the usage counts every one.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	s := openTemp(t)
	const writers, each = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := Namespace{Principal: fmt.Sprintf("p%d", w%2), Capsule: "alice"}
			for i := range each {
				if err := s.Set(ns, fmt.Sprintf("w%d.%03d", w, i), []byte("value"), noQuota); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	for _, p := range []string{"p0", "p1"} {
		n += len(keys(t, s, Namespace{p, "alice"}, ""))
	}
	if n != writers*each {
		t.Errorf("%d keys, want %d", n, writers*each)
	}
	want := uint64(writers * each * (len("w0.000") + len("value")))
	if got, _ := s.Usage("alice"); got != want {
		t.Errorf("usage %d, want %d", got, want)
	}
}

// TestSharedTransactionFailureIsolated: a write that fails a shared transaction fails alone;
// the others in its batch are committed, and a refused one is refused alone.
func TestSharedTransactionFailureIsolated(t *testing.T) {
	s := openTemp(t)
	req := func(ns Namespace, key string, size int, quota uint64) *writeReq {
		value := make([]byte, size)
		return &writeReq{done: make(chan error, 1), apply: func(tx *bolt.Tx) error {
			// What Set's transaction does, without its checks of the key.
			b, err := tx.Bucket(entriesBucket).CreateBucketIfNotExists([]byte(ns.String()))
			if err != nil {
				return err
			}
			usage := readUsage(tx, ns.Capsule)
			if usage+entrySize(key, value) > quota {
				return &QuotaError{Capsule: ns.Capsule, Quota: quota, Usage: usage, Would: usage + entrySize(key, value)}
			}
			if err := b.Put([]byte(key), value); err != nil {
				return err
			}
			return writeUsage(tx, ns.Capsule, usage+entrySize(key, value))
		}}
	}
	batch := []*writeReq{
		req(alice, "first", 1, noQuota),
		req(alice, strings.Repeat("k", bolt.MaxKeySize+1), 1, noQuota), // bbolt refuses the key: the transaction fails
		req(bob, "refused", 10, 5),
		req(alice, "last", 1, noQuota),
	}
	s.commit(batch)
	var got []string
	for _, r := range batch {
		err := <-r.done
		switch {
		case err == nil:
			got = append(got, "ok")
		case errors.As(err, new(*QuotaError)):
			got = append(got, "quota")
		case errors.As(err, new(*StorageError)) && strings.Contains(err.Error(), "key too large"):
			got = append(got, "storage")
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if want := []string{"ok", "storage", "quota", "ok"}; !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	if k := keys(t, s, alice, ""); !reflect.DeepEqual(k, []string{"first", "last"}) {
		t.Errorf("alice's keys %q, want first and last", k)
	}
	if u, _ := s.Usage("alice"); u != 5+1+4+1 {
		t.Errorf("alice's usage %d, want 11", u)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	first := NewLazy(dir)
	if first.Opened() {
		t.Fatal("opened before first use")
	}
	if _, err := os.Stat(first.Path()); !os.IsNotExist(err) {
		t.Fatalf("the database exists before first use: %v", err)
	}
	s, err := first.Store()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := first.Store(); err != nil || again != s {
		t.Fatalf("second Store() = %p, %v; want the same store %p", again, err, s)
	}
	// A second opener (another host; flock locks conflict between open files, in one process
	// as between processes) is refused, naming the directory and the holder's pid.
	second := NewLazy(dir)
	_, err = second.Store()
	var le *LockedError
	if !errors.As(err, &le) || le.Pid != os.Getpid() || le.StateDir != dir {
		t.Fatalf("second opener: %v, want a LockedError for %s naming pid %d", err, dir, os.Getpid())
	}
	want := fmt.Sprintf("the KV store of state directory %s is held by another host (pid %d)", dir, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PidFileName)); !os.IsNotExist(err) {
		t.Errorf("the pid file outlives Close: %v", err)
	}
	if _, err := first.Store(); !errors.Is(err, ErrClosed) {
		t.Errorf("Store after Close: %v, want ErrClosed", err)
	}
	// Once released, the second opener gets it (a later call tries again).
	if _, err := second.Store(); err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	second.Close()
	if err := s.Set(alice, "k", nil, noQuota); !errors.Is(err, ErrClosed) {
		t.Errorf("Set on a closed store: %v, want ErrClosed", err)
	}
}

func TestReadPid(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		want          int
	}{
		{"pid", "1234\n", 1234},
		{"garbage", "hello", 0},
		{"negative", "-5", 0},
		{"too long", strings.Repeat("1", 100), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			os.WriteFile(p, []byte(tt.content), 0o600)
			if got := readPid(p); got != tt.want {
				t.Errorf("readPid(%q) = %d, want %d", tt.content, got, tt.want)
			}
		})
	}
	if got := readPid(filepath.Join(dir, "missing")); got != 0 {
		t.Errorf("missing file: %d", got)
	}
}
