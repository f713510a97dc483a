package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/callwire"
)

// DefaultPrincipal is the principal capsules are loaded for, and the one stamped on the messages
// they publish.
const DefaultPrincipal = "default"

// maxInterceptors caps the subscriptions made for one capsule's [[interceptor]]s (upstream's 64).
const maxInterceptors = 64

// envelopeBytes is the payload budget of one poll or recv envelope: 10 MiB.
const envelopeBytes = 10 << 20

// quotaTolerance is how far past its publish quota the host lets a shim go before it calls the
// shim compromised. The shim enforces the quota itself (so the guest gets upstream's error at
// once); its 1 s windows and the host's cannot start at the same instant, so in the worst case
// the shim accepts a window's budget that straddles two of the host's windows.
const quotaTolerance = 2

// errUnloading refuses an IPC request that arrives while the instance is unloading: a race a
// correct shim can lose, so not evidence of anything.
var errUnloading = errors.New("the capsule is unloading")

// instanceIPC is the host's IPC state of one capsule instance: the authority over what it may
// publish and subscribe (its guard, the same checks the shim makes), and its subscriptions on
// the bus.
type instanceIPC struct {
	sourceID  string
	principal string
	guard     *guard.Guard

	mu     sync.Mutex // guards the fields below, and orders the guard's handle changes with them
	subs   map[uint64]*ipcSub
	next   uint64
	closed bool

	// The hand-over of subscriptions to a reloaded capsule's next instance (ipc_takeover.go).
	// lender is the previous instance's IPC state while this one is being loaded for a reload,
	// nil otherwise; drained is closed once this instance, having lent its subscriptions, came
	// back for more on one of them (re-armed when they are given back).
	lender        *instanceIPC
	drained       chan struct{}
	drainedClosed bool

	// The guest's publishes the host did not take (the link to other hosts refused them), and
	// why (the latest reason), not reported to the guest yet (takeNotTaken).
	refusedMu  sync.Mutex
	refused    int
	refusedWhy string
}

func newInstanceIPC(m *manifest.Manifest) *instanceIPC {
	return &instanceIPC{
		sourceID:  uuid.NewString(),
		principal: DefaultPrincipal,
		guard:     guard.New(hostGuardConfig(m), nil),
		subs:      map[uint64]*ipcSub{},
		next:      1,
		drained:   make(chan struct{}),
	}
}

// hostGuardConfig is the configuration of the host's guard of an instance of m: the ACLs and
// quota the shim gets in its LoadRequest, with quotaTolerance times the shim's budget.
func hostGuardConfig(m *manifest.Manifest) guard.Config {
	bps := m.Limits.IPCBytesPerSec
	if bps == 0 {
		bps = guard.DefaultBytesPerSecond
	}
	if bps > math.MaxUint64/quotaTolerance {
		bps = math.MaxUint64 / quotaTolerance
	}
	return guard.Config{
		CapsuleID:   m.ID(),
		Publish:     m.Capabilities.IPCPublish,
		Subscribe:   m.Capabilities.IPCSubscribe,
		BytesPerSec: bps * quotaTolerance,
	}
}

// subscribeInterceptors subscribes a run-loop capsule's [[interceptor]] events for it (the
// manifest is operator-trusted, so no ACL applies) and returns the JSON the guest reads with
// astrid_get_interceptor_handles. These handles come first (1..N) and cannot be unsubscribed.
// A capsule without a run export (subscribe false) gets no subscription and "[]": its
// interceptors are dispatched to its astrid_hook_trigger instead.
func (s *instanceIPC) subscribeInterceptors(b *bus.Bus, interceptors []manifest.Interceptor, subscribe bool) ([]byte, error) {
	if len(interceptors) > maxInterceptors {
		return nil, fmt.Errorf("the capsule declares %d [[interceptor]]s; at most %d are allowed", len(interceptors), maxInterceptors)
	}
	if !subscribe {
		interceptors = nil
	}
	handles := []guard.InterceptorHandle{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ic := range interceptors {
		h := s.next
		if err := s.guard.AddInterceptor(h); err != nil {
			return nil, fmt.Errorf("interceptor %q: %w", ic.Event, err)
		}
		s.next++
		e, err := s.newSub(b, ic.Event, false) // interceptors stay on their host
		if err != nil {
			return nil, fmt.Errorf("interceptor %q: %w", ic.Event, err)
		}
		s.subs[h] = e
		handles = append(handles, guard.InterceptorHandle{HandleID: h, Action: ic.Action, Topic: ic.Event})
	}
	return json.Marshal(handles)
}

// admit checks one of the guest's publishes with the guard and returns the message to publish,
// its payload converted by the shape the guard's one pass over it found (into bytes of its own:
// payload may be a view into the frame it came in).
func (s *instanceIPC) admit(topic string, payload []byte, now time.Time) (bus.Message, error) {
	shape, err := s.guard.CheckPublishShapeAt(topic, payload, now)
	if err != nil {
		return bus.Message{}, err
	}
	return bus.Message{Topic: topic, Payload: bus.ConvertPayload(payload, shape), SourceID: s.sourceID, Principal: s.principal}, nil
}

// notTaken records n of the guest's publishes the host did not take, and why, for the guest's
// next host call or the end of its export call (takeNotTaken).
func (s *instanceIPC) notTaken(n int, why string) {
	s.refusedMu.Lock()
	s.refused += n
	s.refusedWhy = why
	s.refusedMu.Unlock()
}

// takeNotTaken returns the guest's publishes the host did not take since the last report, as
// the guest's error (callwire.NotTaken), and forgets them: each is reported once. The host reads
// a shim's frames in order, so a batch is published (or refused) before the host call or call
// result the shim sent after it is read.
func (s *instanceIPC) takeNotTaken() error {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	if s.refused == 0 {
		return nil
	}
	err := callwire.NotTaken(s.refused, s.refusedWhy)
	s.refused, s.refusedWhy = 0, ""
	return err
}

// subscribe checks a guest subscription with the guard, subscribes it and returns its handle.
func (s *instanceIPC) subscribe(b *bus.Bus, pattern string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errUnloading
	}
	if err := s.guard.CheckSubscribe(pattern); err != nil {
		return 0, err
	}
	h := s.next
	if err := s.guard.AddSubscription(h); err != nil {
		return 0, err
	}
	e, err := s.newSub(b, pattern, true)
	if err != nil {
		s.guard.Unsubscribed(h)
		return 0, busRefusal("subscribe", err)
	}
	s.next++ // wraps at 2^64, as upstream's wrapping_add
	s.subs[h] = e
	return h, nil
}

// get returns the subscription of a handle the guest polls or receives on.
func (s *instanceIPC) get(h uint64) (*ipcSub, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.guard.CheckHandle(h); err != nil {
		return nil, err
	}
	sub, ok := s.subs[h]
	if !ok { // closed
		return nil, errUnloading
	}
	return sub, nil
}

// unsubscribe ends a guest subscription; interceptor handles are refused.
func (s *instanceIPC) unsubscribe(h uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.guard.CheckUnsubscribe(h); err != nil {
		return err
	}
	if sub, ok := s.subs[h]; ok {
		s.release(sub)
		delete(s.subs, h)
	}
	s.guard.Unsubscribed(h)
	return nil
}

// close ends every subscription of the instance (it is unloading or crashed); a recv waiting on
// one of them returns at once. A subscription lent to the next instance of a reloaded capsule is
// not this instance's to end; one borrowed from the previous instance, during a reload that now
// fails, goes back to it (see release).
func (s *instanceIPC) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for h, sub := range s.subs {
		s.release(sub)
		delete(s.subs, h)
	}
}

// stats reports each live subscription's counters, by handle.
func (s *instanceIPC) stats() map[uint64]bus.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]bus.Stats, len(s.subs))
	for h, sub := range s.subs {
		if sub.lentTo == nil {
			out[h] = sub.sub.Stats()
		}
	}
	return out
}
