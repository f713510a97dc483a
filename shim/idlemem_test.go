package shim

import "testing"

// TestIdleMemoryRelease: a health check releases memory only when no call finished since the
// previous check and idleReleaseBytes were allocated since the last release.
func TestIdleMemoryRelease(t *testing.T) {
	type check struct {
		calls   uint64
		allocs  uint64
		release bool
	}
	tests := []struct {
		name   string
		checks []check
	}{
		{"first check after an idle load", []check{{0, 3 << 20, true}}},
		{"a call before the first check", []check{{1, 3 << 20, false}, {1, 3 << 20, true}}},
		{"too little allocated since", []check{{0, 3 << 20, true}, {0, 3<<20 + idleReleaseBytes - 1, false}, {0, 3<<20 + idleReleaseBytes, true}}},
		{"busy between checks", []check{{0, 3 << 20, true}, {5, 8 << 20, false}, {9, 16 << 20, false}, {9, 16 << 20, true}}},
		{"idle again after calls", []check{{2, 1 << 20, false}, {2, 1 << 20, true}, {2, 1 << 20, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var allocs uint64
			released := false
			m := &idleMemory{allocs: func() uint64 { return allocs }, release: func() { released = true }}
			for k, c := range tt.checks {
				allocs, released = c.allocs, false
				m.check(c.calls)
				if released != c.release {
					t.Fatalf("check %d (%d calls, %d bytes allocated): released %v, want %v", k, c.calls, c.allocs, released, c.release)
				}
			}
		})
	}
}

// TestIdleMemoryDefaults: with the runtime's own readings, an idle check releases once the
// process has allocated enough, and not again before it allocates more.
func TestIdleMemoryDefaults(t *testing.T) {
	var m idleMemory
	m.check(0) // a test process has allocated far more than idleReleaseBytes
	if m.released == 0 {
		t.Fatal("the first idle check did not release")
	}
	before := m.released
	m.check(0)
	if after := heapAllocs(); after-before < idleReleaseBytes && m.released != before {
		t.Fatalf("released again after %d bytes allocated", after-before)
	}
}
