package shim

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// idleReleaseBytes is how much an idle shim may allocate before it collects and hands its free
// memory back to the system (see idleMemory).
const idleReleaseBytes = 128 << 10

// idleMemory hands an idle shim's garbage back to the system. An idle shim allocates only when
// it answers the host's health checks, ~5 KB each (measured); left to itself, its Go runtime
// lets that garbage grow to the 4 MB heap goal before its first collection and keeps the pages
// from then on: after 2000 checks (5.5 hours at one every 10 s) an idle shim held 7.37 MB of PSS
// instead of the 2.72 MB it held after its load (BenchmarkIdleMemory, 50 capsules). So a health
// check that finds the shim idle (no call since the previous check), once the shim has
// allocated idleReleaseBytes since its last release, collects and returns the free pages
// (debug.FreeOSMemory, ~1 ms of CPU with the shim's small heap) at a moment when no call waits
// for it: the first time 10 s after the load, then every ~25 checks. A shim with calls between
// two checks is left to its own collector, which paces a busy heap.
//
// A collection has a cost a shim that never collected does not pay: the runtime's sweep sets
// take a block for each size class in use (~1 MB in a shim, never returned): an idle shim holds
// ~4.1 MB with this release in place (BenchmarkIdleMemory).
type idleMemory struct {
	// allocs reads the bytes the shim has allocated since it started; release collects and
	// returns free memory. Nil means runtime/metrics and debug.FreeOSMemory (tests set them).
	allocs  func() uint64
	release func()

	mu       sync.Mutex
	calls    uint64 // the call count at the previous check
	released uint64 // allocs at the last release
}

// check is called on each health check the shim answers, with its count of finished calls; it
// releases memory if the shim has been idle since the previous check and has allocated enough.
func (m *idleMemory) check(calls uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	idle := calls == m.calls
	m.calls = calls
	if !idle {
		return
	}
	allocs := m.allocs
	if allocs == nil {
		allocs = heapAllocs
	}
	n := allocs()
	if n-m.released < idleReleaseBytes {
		return
	}
	if m.release != nil {
		m.release()
	} else {
		debug.FreeOSMemory()
	}
	m.released = n
}

// heapAllocs is the bytes allocated on the heap since the process started.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
