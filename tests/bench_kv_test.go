package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
)

// kvBenchOps is how many KV calls one guest call makes (the kv capsule's repeat), so that the
// export call's own cost is shared out and the figure is the host function's.
const kvBenchOps = 50

// BenchmarkKV compares astrid_kv_get and astrid_kv_set from a guest (the kv test capsule, through
// its real shim, the host's HostCall and the host's store) with the same operation on bbolt
// directly (a fresh database with bbolt's defaults: every set a synced transaction), in the same
// run, alternating the two. The figures are per operation.
func BenchmarkKV(b *testing.B) {
	ctx := context.Background()
	shim, err := host.VerifyShim(shimBin)
	if err != nil {
		b.Fatal(err)
	}
	h, err := host.New(host.Config{Shim: shim, StateDir: b.TempDir(), Logger: hclog.NewNullLogger(), LogLevel: hclog.Warn})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(ctx)
	m, _, err := manifest.Load(kvCapsule(b, "kvbench", ""))
	if err != nil {
		b.Fatal(err)
	}
	inst, _, err := h.Load(ctx, m, host.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(b.TempDir(), "direct.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("kv")); return err }); err != nil {
		b.Fatal(err)
	}
	key, value := []byte("bench.key"), kvValue(7, 100)

	set := func(b *testing.B) (time.Duration, error) {
		t0 := time.Now()
		for range kvBenchOps {
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("kv")).Put(key, value) }); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
	get := func(b *testing.B) (time.Duration, error) {
		t0 := time.Now()
		for range kvBenchOps {
			err := db.View(func(tx *bolt.Tx) error {
				if v := tx.Bucket([]byte("kv")).Get(key); len(v) != len(value) {
					return fmt.Errorf("bbolt get: %d bytes", len(v))
				}
				return nil
			})
			if err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
	guest := func(fn string, args ...[]byte) []byte {
		in, _ := json.Marshal(map[string]any{"fn": fn, "args": args, "repeat": kvBenchOps})
		return in
	}
	for _, bm := range []struct {
		name   string
		direct func(*testing.B) (time.Duration, error)
		input  []byte
		want   string
	}{
		{"set", set, guest("astrid_kv_set", key, value), ""},
		{"get", get, guest("astrid_kv_get", key), "\x00" + string(value)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			var directTime, guestTime time.Duration
			for range b.N {
				d, err := bm.direct(b)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				out, err := inst.Call(ctx, "call", bm.input, 0)
				if err != nil || string(out) != bm.want {
					b.Fatalf("guest: %q %v", out, err)
				}
				guestTime += time.Since(t0)
				directTime += d
			}
			report(b, "bbolt-"+bm.name+"-µs", directTime/kvBenchOps, "guest-kv-"+bm.name+"-µs", guestTime/kvBenchOps)
		})
	}
}
