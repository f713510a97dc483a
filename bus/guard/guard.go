// Package guard is the guest contract of the IPC host functions: every rule a guest's publish,
// subscribe, unsubscribe, poll or recv must pass — lengths, the order in which the quota is
// charged, topic rules, ACLs, the JSON a payload must be, handles and limits — with upstream's
// guest-facing error texts, in one place.
//
// The shim and the host both call it. The shim builds a [Guard] from the LoadRequest and checks
// each guest call before it sends anything, so the guest gets the exact error at once. The host,
// which decides, builds a Guard for the same capsule instance from the same manifest and runs
// the same checks again on every request that arrives on the instance's connection. Because both
// sides run the same function on the same configuration, whatever a correct shim lets through the
// host accepts; a request the host's Guard refuses is one a correct shim never sends, so it is
// evidence that the shim is compromised. The one exception is state the two sides cannot share
// exactly, the publish quota's 1 s windows: the host allows a multiple of the budget (see
// [Config.BytesPerSec]).
//
// The package links neither the delivery engine (package bus) nor anything of the host, so the
// shim binary stays small; `go list -deps ./cmd/astrid-shim` shows it.
package guard

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astrid-go/astrid/bus/topics"
)

// Config is what a Guard is built from: one capsule instance's IPC ACLs and limits, as the
// LoadRequest carries them to the shim (ConfigFromLoad) and as the host reads them from the
// manifest.
type Config struct {
	// CapsuleID names the capsule in the ACL errors.
	CapsuleID string
	// Publish is the capsule's ipc_publish ACL: topic patterns it may publish to.
	Publish []string
	// Subscribe is the capsule's ipc_subscribe ACL: patterns its subscriptions must be covered by.
	Subscribe []string
	// BytesPerSec is the publish budget per 1 s window ([limits] ipc_bytes_per_sec); 0 means
	// DefaultBytesPerSecond. The host gives its Guard a multiple of the shim's (its windows
	// and the shim's cannot start at the same instant), so a shim within its quota is never
	// refused by the host's.
	BytesPerSec uint64
	// Interceptors are the handles of the subscriptions the host made for the capsule's
	// [[interceptor]]s: the guest may poll and recv them, not unsubscribe them, and they count
	// against MaxSubscriptions.
	Interceptors []uint64
}

// Guard checks the IPC calls of one capsule instance. It keeps the state the rules depend on:
// the quota's window and the instance's live subscription handles. It is safe for concurrent
// use.
type Guard struct {
	capsuleID string
	publish   []string
	subscribe []string
	limiter   *RateLimiter
	// published is the last topic that passed the topic rules and the ipc_publish ACL, which
	// depend on nothing but the topic and this Guard's fixed configuration: a guest publishes to
	// one topic again and again, and the check of a repeated topic is a string comparison.
	published atomic.Pointer[string]

	mu      sync.Mutex
	handles map[uint64]bool // the live subscription handles; true for an interceptor's
}

// New returns the Guard of cfg, reading the time for the quota from now (nil means the real
// clock, read as RateLimiter.Now does).
func New(cfg Config, now func() time.Time) *Guard {
	g := &Guard{
		capsuleID: cfg.CapsuleID,
		publish:   cfg.Publish,
		subscribe: cfg.Subscribe,
		limiter:   NewRateLimiter(cfg.BytesPerSec, now),
		handles:   make(map[uint64]bool, len(cfg.Interceptors)),
	}
	for _, h := range cfg.Interceptors {
		g.handles[h] = true
	}
	return g
}

// CheckPublish checks one publish of payload to the topic name, in upstream 0.5's order, after
// the bound of every guest argument (MaxArgBytes): the topic's length; then the quota is charged with the payload's length (so a publish refused
// by a later check still counts, as upstream's does); then the topic's UTF-8 and segments, the
// ipc_publish ACL, and last the payload's JSON (CheckPayload).
func (g *Guard) CheckPublish(name string, payload []byte) error {
	_, err := g.CheckPublishShape(name, payload)
	return err
}

// CheckPublishShape is CheckPublish that also returns the shape of the payload it accepts
// (CheckPayloadShape), which the host converts the payload by without reading it again.
func (g *Guard) CheckPublishShape(name string, payload []byte) (PayloadShape, error) {
	return g.CheckPublishShapeAt(name, payload, g.limiter.Now())
}

// Now reads the clock of the Guard's quota (RateLimiter.Now), for CheckPublishShapeAt.
func (g *Guard) Now() time.Time { return g.limiter.Now() }

// CheckPublishShapeAt is CheckPublishShape with the quota charged at the time now (from Now):
// the host checks the messages of one Publish frame at the instant it read for the frame
// (RateLimiter.ChargeAt), with the same result as checking each at that instant.
func (g *Guard) CheckPublishShapeAt(name string, payload []byte, now time.Time) (PayloadShape, error) {
	if len(payload) > MaxArgBytes {
		return 0, argTooLarge(len(payload))
	}
	if len(name) > topics.MaxTopicBytes {
		return 0, topics.ErrTopicTooLong
	}
	if err := g.limiter.ChargeAt(len(payload), now); err != nil {
		return 0, err
	}
	if last := g.published.Load(); last == nil || *last != name {
		if err := topics.CheckPublishTopic(name); err != nil {
			return 0, err
		}
		if err := publishACL.check(g.capsuleID, name, g.publish); err != nil {
			return 0, err
		}
		// A copy, so that only a new topic allocates: the address of name itself would move the
		// parameter to the heap on every call (one allocation per publish, in the shim and the host).
		last := name
		g.published.Store(&last)
	}
	return CheckPayloadShape(payload)
}

// CheckSubscribe checks a subscription to pattern, in upstream 0.5's order: the pattern's
// rules (topics.CheckSubscribePattern), the ipc_subscribe ACL, then the MaxSubscriptions limit.
// It records nothing: AddSubscription records the handle the subscription gets.
func (g *Guard) CheckSubscribe(pattern string) error {
	if err := topics.CheckSubscribePattern(pattern); err != nil {
		return err
	}
	if err := subscribeACL.check(g.capsuleID, pattern, g.subscribe); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.handles) >= MaxSubscriptions {
		return ErrSubscriptionLimit
	}
	return nil
}

// AddSubscription records h, the handle of a subscription CheckSubscribe allowed. It fails with
// ErrHandleCollision if h is live already, and with ErrSubscriptionLimit if the instance holds
// MaxSubscriptions (a concurrent subscription came first).
func (g *Guard) AddSubscription(h uint64) error {
	return g.add(h, false)
}

// AddInterceptor records h as the handle of an [[interceptor]]'s subscription, which the guest
// may read but not unsubscribe.
func (g *Guard) AddInterceptor(h uint64) error {
	return g.add(h, true)
}

func (g *Guard) add(h uint64, interceptor bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, live := g.handles[h]; live {
		return ErrHandleCollision
	}
	if len(g.handles) >= MaxSubscriptions {
		return ErrSubscriptionLimit
	}
	g.handles[h] = interceptor
	return nil
}

// CheckHandle checks that h is one of the instance's live handles, for poll and recv.
func (g *Guard) CheckHandle(h uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, live := g.handles[h]; !live {
		return ErrHandleNotFound
	}
	return nil
}

// CheckUnsubscribe checks that h is a live handle the guest may unsubscribe: its own, not an
// interceptor's.
func (g *Guard) CheckUnsubscribe(h uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	interceptor, live := g.handles[h]
	switch {
	case !live:
		return ErrHandleNotFound
	case interceptor:
		return ErrInterceptorHandle
	}
	return nil
}

// Unsubscribed forgets h, a handle CheckUnsubscribe allowed whose subscription has ended.
func (g *Guard) Unsubscribed(h uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.handles[h] {
		delete(g.handles, h)
	}
}

// CheckRecv checks a recv request as the host receives it: a live handle and a timeout of at
// most MaxRecvTimeoutMs (the shim clamps the guest's with ClampRecvTimeout, so a longer one
// never comes from a correct shim).
func (g *Guard) CheckRecv(h, timeoutMs uint64) error {
	if err := g.CheckHandle(h); err != nil {
		return err
	}
	if timeoutMs > MaxRecvTimeoutMs {
		return fmt.Errorf("a recv timeout of %d ms; the shim clamps timeouts to %d ms", timeoutMs, MaxRecvTimeoutMs)
	}
	return nil
}

// Handles returns the number of live handles, interceptors' included.
func (g *Guard) Handles() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.handles)
}

// IsOrdinary reports whether err, a refusal of the host's Guard, can happen to a correct shim
// (ErrHandleCollision: only the host numbers handles). Every other refusal is one the shim's
// own Guard would have made first.
func IsOrdinary(err error) bool {
	return errors.Is(err, ErrHandleCollision)
}
