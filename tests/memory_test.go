package tests

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/sandbox"
)

// TestShimMemoryLimit: hole 3 of issue 10. A shim that takes more memory than the capsule's
// [limits] memory plus host.ShimMemoryOverhead (here rawshim standing in for a shim a guest
// escaped into) is killed by the kernel, and the host reports the crash; under the limit it
// lives. It needs the cgroup layer, which a host without a writable cgroup hierarchy lacks.
func TestShimMemoryLimit(t *testing.T) {
	if sup := sandbox.Probe(hostBin); !sup.Available(sandbox.LayerCgroup) {
		t.Skipf("no cgroup layer here, so shims have no memory limit: %s", sup.Reason(sandbox.LayerCgroup))
	}
	raw := rawShim(t)
	h := newHost(t, func(c *host.Config) {
		s, err := host.VerifyShim(raw)
		if err != nil {
			t.Fatal(err)
		}
		c.Shim = s
		c.HealthInterval = time.Hour // rawshim has no Health
	})
	inst, _ := loadCapsule(t, h, capsuleVariant(t, "hello", "[restart]\npolicy = \"never\"\n")) // [limits] memory = "64MiB"
	out, err := inst.Call(context.Background(), "alloc", []byte("64"), 0)
	if err != nil || string(out) != "survived 64" {
		t.Fatalf("64 MiB: %q, %v", out, err)
	}
	over := (64<<20+host.ShimMemoryOverhead)>>20 + 64
	// Touching a GiB page by page takes seconds on a busy machine: more than hello's call_timeout.
	out, err = inst.Call(context.Background(), "alloc", []byte(strconv.Itoa(over)), 2*time.Minute)
	var ce *host.CallError
	if !errors.As(err, &ce) {
		t.Fatalf("%d MiB past a limit of 64 MiB + %d MiB: %q, %v; want the shim killed", over, host.ShimMemoryOverhead>>20, out, err)
	}
	waitFor(t, 10*time.Second, "the instance to fail", func() bool { st, _ := inst.State(); return st == host.StateFailed })
	if _, reason := inst.State(); !strings.Contains(reason, "killed by signal killed") {
		t.Fatalf("the crash says %q; want the shim killed by SIGKILL", reason)
	}
}
