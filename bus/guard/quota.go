package guard

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Per-capsule-instance IPC quotas (docs/architecture.md#the-bus; MaxSubscriptions is in acl.go).
const (
	// MaxPayloadBytes is the largest payload a capsule may publish.
	MaxPayloadBytes = 5 << 20
	// DefaultBytesPerSecond is the default IPC budget of a capsule instance
	// per 1 s window (the manifest's [limits] ipc_bytes_per_sec).
	DefaultBytesPerSecond = 10 << 20
)

// RateWindow is the length of the rate limiter's fixed window.
const RateWindow = time.Second

// The errors of RateLimiter.Charge; the returned errors wrap them and begin
// with their upstream texts.
var (
	ErrPayloadTooLarge = errors.New("Payload too large")
	ErrRateLimited     = errors.New("Rate limit exceeded")
)

// RateLimiter is the IPC rate limiter of one capsule instance (upstream
// 0.5's IpcRateLimiter with this runtime's numbers): a payload may be at most
// MaxPayloadBytes, and the payloads charged in a fixed 1 s window may total
// at most the budget. A window starts with the first charge made at least
// RateWindow after the previous window's start. There is no message-count
// limit. It is safe for concurrent use.
type RateLimiter struct {
	budget uint64
	now    func() time.Time // nil: the monotonic clock, read from base (Now)
	base   time.Time        // when now is nil: the limiter's creation, with its monotonic reading

	mu     sync.Mutex
	start  time.Time // start of the current window; zero before the first charge
	window uint64    // bytes charged in the current window
}

// NewRateLimiter returns a limiter allowing bytesPerSecond bytes per 1 s
// window (0 means DefaultBytesPerSecond), reading the time from now (nil
// means the real clock: see Now).
func NewRateLimiter(bytesPerSecond uint64, now func() time.Time) *RateLimiter {
	if bytesPerSecond == 0 {
		bytesPerSecond = DefaultBytesPerSecond
	}
	r := &RateLimiter{budget: bytesPerSecond, now: now}
	if now == nil {
		r.base = time.Now()
	}
	return r
}

// Charge accounts for a payload of size bytes about to be published. It
// fails with an error wrapping ErrPayloadTooLarge when size exceeds
// MaxPayloadBytes, and with one wrapping ErrRateLimited when the window's
// total plus size would exceed the budget; the error text starts with
// upstream's ("Payload too large", "Rate limit exceeded") and adds the
// numbers in parentheses. Only an accepted payload is charged. A negative
// size counts as 0.
func (r *RateLimiter) Charge(size int) error {
	return r.ChargeAt(size, r.Now())
}

// Now reads the limiter's clock, for ChargeAt. The real clock (a nil now for NewRateLimiter) is
// read as the monotonic time since the limiter's creation, one clock read where time.Now makes
// two (the wall clock too; the shim reads it for every publish): the Time returned is the
// creation's plus that duration, so its monotonic reading is exactly the clock's, which is all
// the windows are measured by (Time.Sub), and its wall clock one that ignores any step of the
// system's since.
func (r *RateLimiter) Now() time.Time {
	if r.now != nil {
		return r.now()
	}
	return r.base.Add(time.Since(r.base))
}

// ChargeAt is Charge at the time now, read from Now: the host charges the
// messages of one Publish frame at the one instant it read for the frame,
// each exactly as Charge would at that instant, without reading the clock
// for each message.
func (r *RateLimiter) ChargeAt(size int, now time.Time) error {
	n := uint64(max(size, 0))
	if n > MaxPayloadBytes {
		return fmt.Errorf("%w (%d bytes; the limit is %d)", ErrPayloadTooLarge, n, MaxPayloadBytes)
	}
	// No defer: this runs for every publish, in the shim and the host, and the lock covers
	// only the window's two fields.
	r.mu.Lock()
	if r.start.IsZero() || now.Sub(r.start) >= RateWindow {
		r.start, r.window = now, 0
	}
	if window := r.window; n > r.budget-window { // r.window <= r.budget, so this cannot wrap
		r.mu.Unlock()
		return fmt.Errorf("%w (%d bytes already published in this 1 s window; %d more would exceed the limit of %d bytes per second)",
			ErrRateLimited, window, n, r.budget)
	}
	r.window += n
	r.mu.Unlock()
	return nil
}
