package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/manifest"
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

// instanceIPC is the host's IPC state of one capsule instance: the authority over what it may
// publish and subscribe, and its subscriptions on the bus.
type instanceIPC struct {
	sourceID  string
	principal string
	limiter   *bus.RateLimiter

	mu           sync.Mutex
	subs         map[uint64]*bus.Subscription
	interceptors map[uint64]bool
	next         uint64
	closed       bool
}

// interceptorHandle is one element of astrid_get_interceptor_handles' JSON.
type interceptorHandle struct {
	HandleID uint64 `json:"handle_id"`
	Action   string `json:"action"`
	Topic    string `json:"topic"`
}

func newInstanceIPC(m *manifest.Manifest) *instanceIPC {
	return &instanceIPC{
		sourceID:     uuid.NewString(),
		principal:    DefaultPrincipal,
		limiter:      bus.NewRateLimiter(m.Limits.IPCBytesPerSec*quotaTolerance, time.Now),
		subs:         map[uint64]*bus.Subscription{},
		interceptors: map[uint64]bool{},
		next:         1,
	}
}

// subscribeInterceptors subscribes the capsule's [[interceptor]] events for it (the manifest is
// operator-trusted, so no ACL applies) and returns the JSON the guest reads with
// astrid_get_interceptor_handles. These handles come first (1..N) and cannot be unsubscribed.
func (s *instanceIPC) subscribeInterceptors(b *bus.Bus, interceptors []manifest.Interceptor) ([]byte, error) {
	if len(interceptors) > maxInterceptors {
		return nil, fmt.Errorf("the capsule declares %d [[interceptor]]s; at most %d are subscribed", len(interceptors), maxInterceptors)
	}
	handles := []interceptorHandle{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ic := range interceptors {
		h := s.next
		s.next++
		s.subs[h] = b.Subscribe(ic.Event)
		s.interceptors[h] = true
		handles = append(handles, interceptorHandle{HandleID: h, Action: ic.Action, Topic: ic.Event})
	}
	return json.Marshal(handles)
}

// add registers a new guest subscription and returns its handle.
func (s *instanceIPC) add(b *bus.Bus, pattern string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("the capsule is unloading")
	}
	if len(s.subs) >= bus.MaxSubscriptions {
		return 0, errors.New(bus.ErrTextSubscriptionLimit)
	}
	h := s.next
	if _, taken := s.subs[h]; taken {
		return 0, errors.New(bus.ErrTextHandleCollision)
	}
	s.next++ // wraps at 2^64, as upstream's wrapping_add
	s.subs[h] = b.Subscribe(pattern)
	return h, nil
}

func (s *instanceIPC) get(h uint64) (*bus.Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[h]
	return sub, ok
}

// remove ends a guest subscription; interceptor handles are refused.
func (s *instanceIPC) remove(h uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[h]
	switch {
	case !ok:
		return errors.New(bus.ErrTextHandleNotFound)
	case s.interceptors[h]:
		return errors.New(bus.ErrTextInterceptorHandle)
	}
	delete(s.subs, h)
	sub.Close()
	return nil
}

// close ends every subscription of the instance (it is unloading or crashed); a recv waiting on
// one of them returns at once.
func (s *instanceIPC) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for h, sub := range s.subs {
		sub.Close()
		delete(s.subs, h)
	}
}

// stats reports each live subscription's counters, by handle.
func (s *instanceIPC) stats() map[uint64]bus.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]bus.Stats, len(s.subs))
	for h, sub := range s.subs {
		out[h] = sub.Stats()
	}
	return out
}
