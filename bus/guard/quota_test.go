package guard

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	const MiB = 1 << 20
	type step struct {
		at   time.Duration // since the start
		size int
		want error // nil, ErrPayloadTooLarge or ErrRateLimited
	}
	cases := []struct {
		name   string
		budget uint64
		steps  []step
	}{
		{"payload cap", 0, []step{
			{0, MaxPayloadBytes, nil},
			{0, MaxPayloadBytes + 1, ErrPayloadTooLarge},
			{0, 1 << 30, ErrPayloadTooLarge},
		}},
		{"default 10 MiB window", 0, []step{
			{0, 5 * MiB, nil},
			{100 * time.Millisecond, 5 * MiB, nil},
			{200 * time.Millisecond, 1, ErrRateLimited},
			{999 * time.Millisecond, 1, ErrRateLimited},
			{time.Second, 5 * MiB, nil}, // a new window
			{1500 * time.Millisecond, 5 * MiB, nil},
			{1999 * time.Millisecond, 1, ErrRateLimited},
		}},
		{"only accepted payloads are charged", 100, []step{
			{0, 60, nil},
			{0, 60, ErrRateLimited},
			{0, 40, nil},
			{0, 1, ErrRateLimited},
			{0, 0, nil},
		}},
		{"fixed window starts at the first charge after it expires", 100, []step{
			{0, 100, nil},
			{1500 * time.Millisecond, 100, nil}, // window [1.5 s, 2.5 s)
			{2400 * time.Millisecond, 1, ErrRateLimited},
			{2500 * time.Millisecond, 100, nil},
		}},
		{"a payload above the budget never passes", 10, []step{
			{0, 11, ErrRateLimited},
			{5 * time.Second, 11, ErrRateLimited},
			{5 * time.Second, 10, nil},
		}},
		{"negative size", 10, []step{{0, -5, nil}, {0, 10, nil}}},
	}
	for _, c := range cases {
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		now := start
		r := NewRateLimiter(c.budget, func() time.Time { return now })
		// at charges with ChargeAt, as the host does for a frame's messages; its clock is never
		// read.
		at := NewRateLimiter(c.budget, func() time.Time { panic("ChargeAt read the clock") })
		for i, s := range c.steps {
			now = start.Add(s.at)
			err := r.Charge(s.size)
			if (s.want == nil) != (err == nil) || (s.want != nil && !errors.Is(err, s.want)) {
				t.Errorf("%s: step %d: Charge(%d) at %v = %v, want %v", c.name, i, s.size, s.at, err, s.want)
			}
			if errAt := at.ChargeAt(s.size, now); (errAt == nil) != (err == nil) || (err != nil && errAt.Error() != err.Error()) {
				t.Errorf("%s: step %d: ChargeAt(%d, %v) = %v, Charge = %v", c.name, i, s.size, s.at, errAt, err)
			}
		}
	}
}

func TestRateLimiterTexts(t *testing.T) {
	r := NewRateLimiter(10, nil)
	err := r.Charge(6 << 20)
	if want := "Payload too large (6291456 bytes; the limit is 5242880)"; err == nil || err.Error() != want {
		t.Errorf("Charge(6 MiB) = %v, want %q", err, want)
	}
	r.Charge(4)
	err = r.Charge(7)
	if want := "Rate limit exceeded (4 bytes already published in this 1 s window; 7 more would exceed the limit of 10 bytes per second)"; err == nil || err.Error() != want {
		t.Errorf("Charge over budget = %v, want %q", err, want)
	}
}

// TestRateLimiterRealClock: with the real clock, Now is a monotonic reading taken during the
// call (between two of time.Now's), never going back, which is what the windows are measured by.
func TestRateLimiterRealClock(t *testing.T) {
	r := NewRateLimiter(0, nil)
	prev := r.Now()
	for range 1000 {
		before := time.Now()
		now := r.Now()
		after := time.Now()
		if !strings.Contains(now.String(), " m=") {
			t.Fatalf("Now() = %v has no monotonic reading", now)
		}
		if now.Before(before) || now.After(after) || now.Before(prev) {
			t.Fatalf("Now() = %v, read between %v and %v, after %v", now, before, after, prev)
		}
		prev = now
	}
}
