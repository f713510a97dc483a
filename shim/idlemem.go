package shim

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// idleReleaseBytes is how much a shim that has collected before may allocate before an idle
// check collects and hands its free memory back to the system (see idleMemory).
const idleReleaseBytes = 128 << 10

// firstReleaseBytes is how much a shim that has never collected may allocate from its first
// call on before an idle check collects for the first time: a first collection maps the collector's own
// structures for good (~1 MB in a shim, see idleMemory), so it pays only for more garbage than
// that.
const firstReleaseBytes = 1 << 20

// idleMemory hands the garbage of a shim that has gone idle back to the system. An idle shim
// itself allocates nothing: the host's health checks are pings on the call connection, answered
// from a buffer the connection keeps (callwire.ShimEnd.Pong). So a shim that only ever idles
// never collects: its runtime collects first when the heap reaches its 4 MB goal, and forces a
// collection every 2 minutes only once a first one has run. It stays at what it held after its
// load (~2.7 MB of PSS, BenchmarkIdleMemory), and idleMemory reads nothing for it: the runtime's
// counters cost memory at their first reading (runtime/metrics builds its table of every metric,
// ~64 KB in a test program; runtime.ReadMemStats touched ~400 KB there, and 40 KB in a shim).
//
// Calls do allocate. A shim that ran calls and then went idle would keep their garbage, up to
// the heap goal, for as long as it idles. So a health check that finds the shim idle (no call
// finished since the previous check), after calls it has not looked at yet, collects and returns
// the free pages (debug.FreeOSMemory, ~1 ms of CPU with the shim's small heap) at a moment when
// no call waits, if the calls have allocated enough since the first of them or the last
// release: idleReleaseBytes if the shim has collected before, firstReleaseBytes if not. A first
// collection costs memory of its own: the runtime's sweep sets take a block for each size class
// in use (~4 KB each, in each of two sets, never returned), ~1 MB in a shim (0.26 MB with a few
// size classes in use, 1.1 MB with all of them, in a test program), so it is worth it only for
// more garbage than that. A shim with calls between two checks is left to its own collector,
// which paces a busy heap.
type idleMemory struct {
	// read reads the bytes the shim has allocated since it started and the collections it has
	// completed; release collects and returns free memory. Nil means runtime/metrics and
	// debug.FreeOSMemory (tests set them).
	read    func() (allocs, cycles uint64)
	release func()

	mu       sync.Mutex
	started  bool   // a call has started: released holds the count of its start
	calls    uint64 // the call count at the previous check
	looked   uint64 // the call count when the counters were last read
	released uint64 // allocs at the start of the first call, or at the last release
	samples  []metrics.Sample
}

// calling is called as each call starts: the first one starts the count of what calls allocate
// (what the load allocated is mostly live: the guest, package state).
func (m *idleMemory) calling() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started {
		m.started = true
		m.released, _ = m.counters()
	}
}

// check is called on each health check the shim answers, with its count of finished calls; it
// releases memory if the shim has been idle since the previous check and its calls have
// allocated enough. It reads the runtime's counters only the first time it finds the shim idle
// after calls, and allocates nothing unless it releases.
func (m *idleMemory) check(calls uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	idle := calls == m.calls
	m.calls = calls
	if !idle || calls == m.looked || !m.started {
		return // busy, or nothing allocated since the last look
	}
	m.looked = calls
	allocs, cycles := m.counters()
	threshold := uint64(idleReleaseBytes)
	if cycles == 0 {
		threshold = firstReleaseBytes
	}
	if allocs-m.released < threshold {
		return
	}
	if m.release != nil {
		m.release()
	} else {
		debug.FreeOSMemory()
	}
	m.released = allocs
}

// counters reads the bytes allocated on the heap since the process started and the collections
// completed (m.read, or runtime/metrics into samples kept from one reading to the next). Called
// with mu held.
func (m *idleMemory) counters() (allocs, cycles uint64) {
	if m.read != nil {
		return m.read()
	}
	if m.samples == nil {
		m.samples = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	}
	metrics.Read(m.samples)
	return m.samples[0].Value.Uint64(), m.samples[1].Value.Uint64()
}
