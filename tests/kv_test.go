package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/astrid-go/astrid/host"
)

// The KV host functions through real shims, with the kv test capsule (no SDK; see
// tests/testdata/capsules/kv).

// kvCapsule makes a copy of the kv capsule named name (its [env] storm_name too), with limits
// added to its [limits], and returns its directory.
func kvCapsule(t testing.TB, name, limits string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml, err := os.ReadFile(filepath.Join(capsules["kv"], "Capsule.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(toml), `name = "kv"`, fmt.Sprintf("name = %q", name), 1)
	s = strings.Replace(s, `default = "kv"`, fmt.Sprintf("default = %q", name), 1)
	s = strings.Replace(s, "[limits]\n", "[limits]\n"+limits+"\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(capsules["kv"], "kv.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kv.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kvInput is the input of the capsule's call export: fn with its argument blocks.
func kvInput(fn string, args ...string) []byte {
	blocks := make([][]byte, len(args))
	for i, a := range args {
		blocks[i] = []byte(a)
	}
	b, _ := json.Marshal(map[string]any{"fn": fn, "args": blocks})
	return b
}

// kvCall calls the host function fn with args through inst's call export and returns its raw
// result block.
func kvCall(t testing.TB, inst *host.Instance, fn string, args ...string) ([]byte, error) {
	t.Helper()
	return inst.Call(context.Background(), "call", kvInput(fn, args...), 0)
}

// kvRange is the input of fill and check.
func kvRange(prefix string, start, count, size int) []byte {
	b, _ := json.Marshal(map[string]any{"prefix": prefix, "start": start, "count": count, "size": size})
	return b
}

// checkResult is what the check export returns.
type checkResult struct {
	OK      int   `json:"ok"`
	Missing []int `json:"missing"`
	Wrong   []int `json:"wrong"`
}

func kvCheck(t testing.TB, inst *host.Instance, prefix string, start, count, size int) checkResult {
	t.Helper()
	out, err := inst.Call(context.Background(), "check", kvRange(prefix, start, count, size), 0)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	var res checkResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("check returned %q: %v", out, err)
	}
	return res
}

// kvValue is the capsule's value(i, size): "i;" repeated to size bytes.
func kvValue(i, size int) []byte {
	unit := strconv.Itoa(i) + ";"
	out := make([]byte, size)
	for k := range out {
		out[k] = unit[k%len(unit)]
	}
	return out
}

func TestKVFunctions(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, kvCapsule(t, "kvfuncs", ""))
	key4K, key4K1 := strings.Repeat("k", 4096), strings.Repeat("k", 4097)
	const keyLimit = "memory allocation of 4097 bytes exceeds maximum allowed limit of 4096 bytes"
	// The steps run in order: each sees what the ones before it stored.
	steps := []struct {
		name string
		fn   string
		args []string
		want string // the raw result block: a HostResult keeps its status byte
		trap string // the call fails with a message containing this
	}{
		{"set", "astrid_kv_set", []string{"greeting", "hello"}, "", ""},
		{"get", "astrid_kv_get", []string{"greeting"}, "\x00hello", ""},
		{"get missing is empty", "astrid_kv_get", []string{"missing"}, "\x00", ""},
		{"set empty value", "astrid_kv_set", []string{"empty", ""}, "", ""},
		{"get empty value", "astrid_kv_get", []string{"empty"}, "\x00", ""},
		{"get empty key", "astrid_kv_get", []string{""}, "\x01kv_get failed: invalid key: key must not be empty", ""},
		{"get non-UTF-8 key reads as empty", "astrid_kv_get", []string{"\xff\xfe"}, "\x01kv_get failed: invalid key: key must not be empty", ""},
		{"get NUL key", "astrid_kv_get", []string{"a\x00b"}, "\x01kv_get failed: invalid key: key must not contain null bytes", ""},
		{"set empty key traps", "astrid_kv_set", []string{"", "v"}, "", "kv_set failed: invalid key: key must not be empty"},
		{"set non-UTF-8 key traps", "astrid_kv_set", []string{"\xc3", "v"}, "", "kv_set failed: invalid key: key must not be empty"},
		{"delete NUL key traps", "astrid_kv_delete", []string{"\x00"}, "", "kv_delete failed: invalid key: key must not contain null bytes"},
		{"set list.b", "astrid_kv_set", []string{"list.b", "2"}, "", ""},
		{"set list.a", "astrid_kv_set", []string{"list.a", "1"}, "", ""},
		{"set a key JSON escapes", "astrid_kv_set", []string{"list.\"q\"\n<\u2028>\x01", "3"}, "", ""},
		{"list in byte order, as serde_json writes it", "astrid_kv_list_keys", []string{"list."}, "\x00[\"list.\\\"q\\\"\\n<\u2028>\\u0001\",\"list.a\",\"list.b\"]", ""},
		{"list nothing", "astrid_kv_list_keys", []string{"nothing."}, "\x00[]", ""},
		{"list NUL prefix", "astrid_kv_list_keys", []string{"\x00"}, "\x00[]", ""},
		{"list non-UTF-8 prefix traps", "astrid_kv_list_keys", []string{"list\xff"}, "", "kv_list_keys prefix is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 4"},
		{"clear incomplete UTF-8 prefix traps", "astrid_kv_clear_prefix", []string{"\xe2\x82"}, "", "kv_clear_prefix prefix is not valid UTF-8: incomplete utf-8 byte sequence from index 0"},
		{"clear NUL prefix", "astrid_kv_clear_prefix", []string{"p\x00"}, "\x01kv_clear_prefix failed: invalid key: prefix must not contain null bytes", ""},
		{"clear prefix counts", "astrid_kv_clear_prefix", []string{"list."}, "\x003", ""},
		{"cleared", "astrid_kv_list_keys", []string{"list."}, "\x00[]", ""},
		{"clear nothing", "astrid_kv_clear_prefix", []string{"list."}, "\x000", ""},
		{"delete", "astrid_kv_delete", []string{"greeting"}, "", ""},
		{"deleted", "astrid_kv_get", []string{"greeting"}, "\x00", ""},
		{"delete missing", "astrid_kv_delete", []string{"greeting"}, "", ""},
		{"4 KiB key", "astrid_kv_set", []string{key4K, "v"}, "", ""},
		{"get 4 KiB key", "astrid_kv_get", []string{key4K}, "\x00v", ""},
		{"set 4 KiB + 1 key traps", "astrid_kv_set", []string{key4K1, "v"}, "", keyLimit},
		{"get 4 KiB + 1 key traps", "astrid_kv_get", []string{key4K1}, "", keyLimit},
		{"delete 4 KiB + 1 key traps", "astrid_kv_delete", []string{key4K1}, "", keyLimit},
		{"list 4 KiB + 1 prefix traps", "astrid_kv_list_keys", []string{key4K1}, "", keyLimit},
		{"clear 4 KiB + 1 prefix traps", "astrid_kv_clear_prefix", []string{key4K1}, "", keyLimit},
		{"list all", "astrid_kv_list_keys", []string{""}, "\x00[\"empty\",\"" + key4K + "\"]", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out, err := kvCall(t, inst, st.fn, st.args...)
			if st.trap != "" {
				if err == nil || !strings.Contains(err.Error(), st.trap) {
					t.Fatalf("got %q, %v; want a trap with %q", out, err, st.trap)
				}
				return
			}
			if err != nil || string(out) != st.want {
				t.Fatalf("got %q, %v; want %q", out, err, st.want)
			}
		})
	}

	t.Run("10 MiB value", func(t *testing.T) {
		const limit = 10 << 20
		if _, err := inst.Call(context.Background(), "fill", kvRange("big.", 0, 1, limit), 0); err != nil {
			t.Fatalf("a 10 MiB value: %v", err)
		}
		if res := kvCheck(t, inst, "big.", 0, 1, limit); res.OK != 1 {
			t.Fatalf("the 10 MiB value read back: %+v", res)
		}
		_, err := inst.Call(context.Background(), "fill", kvRange("big.", 1, 1, limit+1), 0)
		if want := "memory allocation of 10485761 bytes exceeds maximum allowed limit of 10485760 bytes"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("a 10 MiB + 1 value: %v; want a trap with %q", err, want)
		}
	})
}

// TestKVCallTwice: two `astrid-host call`s with one --state: the second sees what the first
// stored. A capsule that does not use the KV makes no database.
func TestKVCallTwice(t *testing.T) {
	state, dir := t.TempDir(), kvCapsule(t, "kvtwice", "")
	if r := runCLI(t, state, "call", "--state", state, capsules["hello"], "greet", "--input", "x"); r.code != 0 {
		t.Fatalf("hello: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(state, "kv.db")); !os.IsNotExist(err) {
		t.Fatalf("a host whose capsule does not use the KV made its database: %v", err)
	}
	r := runCLI(t, state, "call", "--state", state, dir, "call", "--input", string(kvInput("astrid_kv_set", "visits", "first")))
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("first call: %+v", r)
	}
	r = runCLI(t, state, "call", "--state", state, dir, "call", "--input", string(kvInput("astrid_kv_get", "visits")))
	if r.code != 0 || r.stdout != "\x00first" {
		t.Fatalf("second call: %+v, want the first call's value", r)
	}
	if _, err := os.Stat(filepath.Join(state, "kv.pid")); !os.IsNotExist(err) {
		t.Errorf("the pid file outlives the host: %v", err)
	}
}

// TestKVConcurrentCapsules: 4 capsules writing at once lose no write, and each sees only its own
// namespace (they use the same key names).
func TestKVConcurrentCapsules(t *testing.T) {
	h := newHost(t)
	const n, count = 4, 60
	insts := make([]*host.Instance, n)
	for k := range n {
		insts[k], _ = loadCapsule(t, h, kvCapsule(t, fmt.Sprintf("kvconc-%d", k), ""))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for k, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each capsule's values have their own size, so a value of another shows.
			_, errs[k] = inst.Call(context.Background(), "fill", kvRange("c.", 0, count, 100+k), 0)
		}()
	}
	wg.Wait()
	for k, inst := range insts {
		t.Run(inst.ID(), func(t *testing.T) {
			if errs[k] != nil {
				t.Fatal(errs[k])
			}
			if res := kvCheck(t, inst, "c.", 0, count, 100+k); res.OK != count {
				t.Errorf("check: %+v, want all %d", res, count)
			}
			out, err := kvCall(t, inst, "astrid_kv_list_keys", "")
			var keys []string
			if err != nil || len(out) == 0 || out[0] != 0 || json.Unmarshal(out[1:], &keys) != nil || len(keys) != count {
				t.Errorf("list_keys: %q, %v; want its own %d keys", out, err, count)
			}
		})
	}
}

// TestKVQuota: a write past [limits] kv_bytes traps with the capsule, its quota and the size it
// would reach; the usage is kept across host restarts.
func TestKVQuota(t *testing.T) {
	state := t.TempDir()
	dir := kvCapsule(t, "kvquota", `kv_bytes = "1KiB"`)
	withState := func(c *host.Config) { c.StateDir = state }
	{
		h := newHost(t, withState)
		inst, _ := loadCapsule(t, h, dir)
		// "q.000000" and 1000 bytes: 1008 of 1024.
		if _, err := inst.Call(context.Background(), "fill", kvRange("q.", 0, 1, 1000), 0); err != nil {
			t.Fatalf("within the quota: %v", err)
		}
		_, err := inst.Call(context.Background(), "fill", kvRange("q.", 1, 1, 100), 0)
		want := "kv_set failed: quota exceeded: capsule kvquota would use 1116 bytes of KV storage (keys and values, now 1008), more than its [limits] kv_bytes of 1024 bytes"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("past the quota: %v; want %q", err, want)
		}
		h.Shutdown(context.Background())
	}
	h := newHost(t, withState)
	inst, _ := loadCapsule(t, h, dir)
	_, err := inst.Call(context.Background(), "fill", kvRange("q.", 1, 1, 10), 0)
	if want := "would use 1026 bytes of KV storage (keys and values, now 1008)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("after a restart: %v; want %q (the usage survives)", err, want)
	}
	if _, err := kvCall(t, inst, "astrid_kv_delete", "q.000000"); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Call(context.Background(), "fill", kvRange("q.", 1, 1, 1000), 0); err != nil {
		t.Fatalf("after freeing space: %v", err)
	}
}

// TestKVSecondHost: while one host holds a state directory's KV store, a second host (call or
// run) whose capsule uses the KV fails at once, naming the directory and the holder's pid;
// a capsule that does not use the KV still runs. runCLI bounds each by a context: a hang fails.
func TestKVSecondHost(t *testing.T) {
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	dir := kvCapsule(t, "kvlock", "")
	loadCapsule(t, h, dir) // importing astrid_kv_* opens the store at load
	want := fmt.Sprintf("the KV store of state directory %s is held by another host (pid %d)", state, os.Getpid())
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"call", []string{"call", "--state", state, dir, "call", "--input", string(kvInput("astrid_kv_get", "k"))}, 2},
		{"run", []string{"run", "--state", state, dir}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, state, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tt.code, want)
			}
		})
	}
	t.Run("without KV", func(t *testing.T) {
		if r := runCLI(t, state, "call", "--state", state, capsules["hello"], "greet", "--input", "x"); r.code != 0 {
			t.Fatalf("a capsule without KV on a held state directory: %+v", r)
		}
	})
}

// TestKVSurvivesSIGKILL: capsules of an `astrid-host run` write as fast as they can, each
// publishing every write once astrid_kv_set has returned; the host is SIGKILLed in the middle,
// and a new host on the same state directory finds every acknowledged write with its whole
// value. Every entry in the database, acknowledged or not, is whole (a torn write would show as a
// wrong value), and bbolt's consistency check passes.
func TestKVSurvivesSIGKILL(t *testing.T) {
	state := t.TempDir()
	dirs := map[string]string{}
	args := []string{"--state", state, "--tail", "kvtest.v1.acked"}
	for _, n := range []string{"storm-a", "storm-b", "storm-c"} {
		dirs[n] = kvCapsule(t, n, "")
		args = append(args, dirs[n])
	}
	run := startRun(t, args...)
	// acked[name] is one more than the highest i whose write the host acknowledged (a capsule
	// writes in order, so every write below it was acknowledged too).
	acked := map[string]int{}
	record := func(line string) {
		var msg struct {
			Payload struct {
				Data struct {
					Name string `json:"name"`
					I    int    `json:"i"`
				} `json:"data"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			t.Fatalf("tail line %q: %v", line, err)
		}
		d := msg.Payload.Data
		acked[d.Name] = max(acked[d.Name], d.I+1)
	}
	const enough = 30
	storming := func() bool {
		for n := range dirs {
			if acked[n] < enough {
				return false
			}
		}
		return true
	}
	for !storming() {
		line, ok := <-run.out
		if !ok {
			t.Fatalf("the host's output ended before every capsule wrote %d entries (%v); log:\n%s", enough, acked, run.logText())
		}
		record(line)
	}
	if err := run.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Whatever the host printed before it died was acknowledged too.
	for line := range run.out {
		record(line)
	}
	<-run.done
	run.cmd.Wait()
	t.Logf("writes acknowledged before the kill: %v", acked)

	for n, dir := range dirs {
		t.Run(n, func(t *testing.T) {
			r := runCLI(t, state, "call", "--state", state, dir, "check", "--input", string(kvRange("storm.", 0, acked[n], 6000)))
			var res checkResult
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
				t.Fatalf("check after the kill: %+v", r)
			}
			if res.OK != acked[n] {
				t.Errorf("%d of the %d acknowledged writes are whole; missing %v, wrong %v", res.OK, acked[n], res.Missing, res.Wrong)
			}
		})
	}

	db, err := bolt.Open(filepath.Join(state, "kv.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("consistency: %v", err)
		}
		for n := range dirs {
			b := tx.Bucket([]byte("kv")).Bucket([]byte("default:capsule:" + n))
			if b == nil {
				t.Errorf("no namespace for %s", n)
				continue
			}
			entries := 0
			b.ForEach(func(k, v []byte) error {
				entries++
				i, err := strconv.Atoi(strings.TrimPrefix(string(k), "storm."))
				if err != nil || string(v) != string(kvValue(i, 6000)) {
					t.Errorf("%s: entry %q is not whole (%d bytes)", n, k, len(v))
				}
				return nil
			})
			if entries < acked[n] {
				t.Errorf("%s: %d entries, fewer than the %d acknowledged", n, entries, acked[n])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
