package host

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestShimPoolHold: while a boot holds the pool, a load's refill starts nothing (the boot
// reserved the spares its capsules take, and a start for a later capsule would slow its last
// loads); the last release trims what the boots reserved beyond the target and starts the
// refills asked for meanwhile, once per key. The shim here is a missing file, so every start
// fails at once: what is counted is the starts the pool made.
func TestShimPoolHold(t *testing.T) {
	a, b := shimKey{memory: 1}, shimKey{memory: 2}
	tests := []struct {
		name        string
		run         func(sp *shimPool)
		wantStarted int64
		wantSpares  map[shimKey]int
	}{
		{"no hold: a refill starts the target", func(sp *shimPool) {
			sp.refill(a)
		}, 1, map[shimKey]int{a: 1}},
		{"held: the refill waits for the release", func(sp *shimPool) {
			sp.hold()
			sp.refill(a)
			sp.refill(a)
			if n := sp.started.Load(); n != 0 {
				t.Errorf("%d starts during the hold, want 0", n)
			}
			sp.release()
		}, 1, map[shimKey]int{a: 1}},
		{"two holds: the last release refills every key asked for", func(sp *shimPool) {
			sp.hold()
			sp.hold()
			sp.refill(a)
			sp.release()
			sp.refill(b)
			if n := sp.started.Load(); n != 0 {
				t.Errorf("%d starts before the last release, want 0", n)
			}
			sp.release()
		}, 2, map[shimKey]int{a: 1, b: 1}},
		{"reserved beyond the target: trimmed, and no refill for a key that has its spare", func(sp *shimPool) {
			sp.hold()
			sp.reserve([]Capsule{{Manifest: bootManifest("x", false, nil, nil)}, {Manifest: bootManifest("y", false, nil, nil)}, {Manifest: bootManifest("z", false, nil, nil)}})
			key := shimKeyOf(bootManifest("x", false, nil, nil))
			sp.refill(key)
			sp.release()
		}, 3, map[shimKey]int{{}: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Host{cfg: Config{Shim: &ShimBinary{Path: filepath.Join(t.TempDir(), "absent")}}, log: hclog.NewNullLogger()}
			sp := newShimPool(h, 1)
			h.spares = sp
			tc.run(sp)
			sp.wg.Wait()
			if n := sp.started.Load(); n != tc.wantStarted {
				t.Errorf("%d shims started, want %d", n, tc.wantStarted)
			}
			for key, want := range tc.wantSpares {
				if got := len(sp.spares[key]); got != want {
					t.Errorf("%d spares of %+v, want %d", got, key, want)
				}
			}
			sp.close()
		})
	}
}
