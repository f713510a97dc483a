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

// TestGoGuestMemoryLimit: a Go guest's runtime knows its memory limit. The shim gives every guest
// GOMEMLIMIT, three quarters of the guest's share of [limits] memory (itself three quarters, in
// whole 64 KiB pages), so a Go heap full of garbage is collected before memory.grow fails at the
// limit.
func TestGoGuestMemoryLimit(t *testing.T) {
	h := newHost(t)
	cases := []struct {
		name   string
		memory string // [limits] memory, as the manifest says it
		want   int64
	}{
		{"the faulty capsule's 32 MiB", "", 32 << 20 / 4 * 3 / 4 * 3},
		{"256 MiB", "256MiB", 256 << 20 / 4 * 3 / 4 * 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := capsules["faulty"]
			if c.memory != "" {
				dir = capsuleEdited(t, "faulty", "faulty-big", func(toml string) string {
					return strings.Replace(toml, `memory = "32MiB"`, `memory = "`+c.memory+`"`, 1)
				})
			}
			inst, _ := loadCapsule(t, h, dir)
			out, err := inst.Call(context.Background(), "memlimit", nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := strconv.ParseInt(string(out), 10, 64); err != nil || got != c.want {
				t.Fatalf("the guest's Go memory limit is %q; want %d (GOMEMLIMIT, 3/4 of 3/4 of [limits] memory)", out, c.want)
			}
		})
	}
}
