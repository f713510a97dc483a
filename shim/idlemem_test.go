package shim

import (
	"testing"
)

// TestIdleMemoryRelease: a health check releases memory only when no call finished since the
// previous check and the calls allocated enough since the first of them or the last release:
// firstReleaseBytes while the shim has never collected, idleReleaseBytes once it has. It reads
// the runtime's counters only after calls it has not looked at yet.
func TestIdleMemoryRelease(t *testing.T) {
	const load = 3 << 20 // allocated by the load, before the first call
	type check struct {
		calls   uint64
		allocs  uint64
		cycles  uint64
		release bool
	}
	tests := []struct {
		name   string
		called bool // a call started before the first check, at load bytes allocated
		checks []check
		reads  int // the readings of the counters, the first call's included
	}{
		{"idle since the load", false, []check{{0, load, 0, false}, {0, load, 0, false}, {0, load, 0, false}}, 0},
		{"calls left less garbage than a first collection costs", true, []check{{3, load + firstReleaseBytes - 1, 0, false}, {3, load + firstReleaseBytes - 1, 0, false}, {3, load + firstReleaseBytes - 1, 0, false}}, 2},
		{"calls left more garbage than a first collection costs", true, []check{{3, load + firstReleaseBytes, 0, false}, {3, load + firstReleaseBytes, 0, true}, {3, load + firstReleaseBytes, 1, false}}, 2},
		{"collected before: less is enough", true, []check{{1, load + idleReleaseBytes, 1, false}, {1, load + idleReleaseBytes, 1, true}}, 2},
		{"collected before, too little since the release", true, []check{{1, load + idleReleaseBytes, 1, false}, {1, load + idleReleaseBytes, 1, true}, {2, load + 2*idleReleaseBytes - 1, 2, false}, {2, load + 2*idleReleaseBytes - 1, 2, false}, {3, load + 2*idleReleaseBytes, 2, false}, {3, load + 2*idleReleaseBytes, 2, true}}, 4},
		{"busy between checks", true, []check{{5, load + 8<<20, 2, false}, {9, load + 16<<20, 4, false}, {9, load + 16<<20, 4, true}, {9, load + 16<<20, 5, false}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var allocs, cycles uint64 = load, 0
			released, reads := false, 0
			m := &idleMemory{read: func() (uint64, uint64) { reads++; return allocs, cycles }, release: func() { released = true }}
			if tt.called {
				m.calling()
				m.calling() // (only the first call counts)
			}
			for k, c := range tt.checks {
				allocs, cycles, released = c.allocs, c.cycles, false
				m.check(c.calls)
				if released != c.release {
					t.Fatalf("check %d (%d calls, %d bytes allocated, %d cycles): released %v, want %v", k, c.calls, c.allocs, c.cycles, released, c.release)
				}
			}
			if reads != tt.reads {
				t.Fatalf("the counters were read %d times, want %d", reads, tt.reads)
			}
		})
	}
}

// TestIdleMemoryDefaults: with the runtime's own readings, an idle check after calls releases
// once they have allocated enough, and a check that does not release allocates nothing.
func TestIdleMemoryDefaults(t *testing.T) {
	var m idleMemory
	m.calling()
	start := m.released
	calls := uint64(1)
	if allocs := testing.AllocsPerRun(100, func() { m.check(calls) }); allocs != 0 {
		t.Fatalf("an idle check that does not release allocated %.0f times", allocs)
	}
	if m.released != start {
		t.Fatal("an idle check released with nothing allocated since the first call")
	}
	garbage := make([][]byte, 0, 64)
	for range 2 * firstReleaseBytes / (32 << 10) {
		garbage = append(garbage[:0], make([]byte, 32<<10))
	}
	_ = garbage
	calls = 2
	m.check(calls) // not idle
	m.check(calls)
	if m.released == start {
		t.Fatalf("the idle check after %d bytes allocated did not release", 2*firstReleaseBytes)
	}
}
