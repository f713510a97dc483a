package host

import (
	"errors"
	"fmt"
	"testing"

	"github.com/astrid-go/astrid/host/metrics"
	"github.com/astrid-go/astrid/shared/pb"
)

// TestInvocationOutcome: a call's outcome label is one of a fixed set. A guest failure kind a
// compromised shim made up (any int32 travels in the proto) is "other", never its number: the
// label's values stay bounded whatever a shim sends.
func TestInvocationOutcome(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, metrics.OutcomeOK},
		{"guest error", &GuestError{Kind: pb.GuestError_GUEST_ERROR}, "guest_error"},
		{"timeout", fmt.Errorf("wrapped: %w", &GuestError{Kind: pb.GuestError_TIMEOUT}), "timeout"},
		{"a kind the shim made up", &GuestError{Kind: pb.GuestError_Kind(12345)}, metrics.OutcomeOther},
		{"a negative kind", &GuestError{Kind: pb.GuestError_Kind(-7)}, metrics.OutcomeOther},
		{"call error", &CallError{Reason: "the capsule is failed"}, metrics.OutcomeCallFailed},
		{"other error", errors.New("x"), metrics.OutcomeCallFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := metrics.Outcome(invocationOutcome(c.err)); got != c.want {
				t.Fatalf("the outcome of %v is %q, want %q", c.err, got, c.want)
			}
		})
	}
	// Every kind this host knows is an outcome of its own.
	for k := range pb.GuestError_Kind_name {
		name := (&GuestError{Kind: pb.GuestError_Kind(k)}).KindName()
		if got := metrics.Outcome(name); got != name {
			t.Errorf("guest failure kind %s is recorded as %s", name, got)
		}
	}
}
