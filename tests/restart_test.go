package tests

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
)

// current returns the host's live instance of the capsule id.
func current(h *host.Host, id string) *host.Instance {
	for _, inst := range h.Instances() {
		if inst.ID() == id {
			return inst
		}
	}
	return nil
}

// TestRestartAfterCrash: a capsule whose shim dies is restarted as [restart] says, with the
// restart budget counted across instances; once it is spent the capsule stays Failed and says why.
func TestRestartAfterCrash(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	restarted := h.Bus().Subscribe(host.TopicCapsuleRestarted)
	defer restarted.Close()
	dir := capsuleVariant(t, "faulty", "\n[restart]\npolicy = \"on-failure\"\nmax_attempts = 2\nbackoff = \"10ms\"\nmax_backoff = \"20ms\"\n")
	first, _ := loadCapsule(t, h, dir)

	inst := first
	for attempt := 1; attempt <= 2; attempt++ {
		if err := syscall.Kill(inst.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		prev := inst
		waitFor(t, 20*time.Second, "the capsule to be restarted", func() bool {
			next := current(h, "faulty")
			if next == nil || next == prev {
				return false
			}
			st, _ := next.State()
			return st == host.StateReady
		})
		inst = current(h, "faulty")
		if inst.Restarts() != attempt {
			t.Fatalf("restart %d: the instance counts %d restarts", attempt, inst.Restarts())
		}
		if out, err := inst.Call(context.Background(), "echo", []byte("back"), 0); err != nil || string(out) != "back" {
			t.Fatalf("after restart %d: %q, %v", attempt, out, err)
		}
		if st, reason := prev.State(); st != host.StateFailed || !strings.Contains(reason, "killed by signal killed") {
			t.Fatalf("the crashed instance: %s (%s)", st, reason)
		}
	}
	env, err := restarted.Recv(context.Background(), 1<<20)
	if err != nil || len(env.Messages) != 2 {
		t.Fatalf("restarted events: %+v, %v", env.Messages, err)
	}

	// The budget of 2 is spent: the third crash leaves the capsule Failed.
	pid := inst.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the last instance to fail", func() bool {
		_, reason := inst.State()
		return strings.Contains(reason, "restart budget of 2 attempts is spent")
	})
	if current(h, "faulty") != inst {
		t.Fatal("the capsule was restarted past its budget")
	}
}

// TestHealthCheck: the host notices a shim that stopped answering while idle (SIGSTOP) by its
// health check, publishes astrid.v1.health.failed, kills it and marks the capsule Failed; a
// capsule busy in a long call is not mistaken for a hung one.
func TestHealthCheck(t *testing.T) {
	checkLeaks(t)
	h := newHost(t, func(c *host.Config) {
		c.HealthInterval = 50 * time.Millisecond
		c.HealthTimeout = 200 * time.Millisecond
	})
	failed := h.Bus().Subscribe(host.TopicHealthFailed)
	defer failed.Close()
	dir := capsuleVariant(t, "faulty", "\n[restart]\npolicy = \"never\"\n")
	inst, _ := loadCapsule(t, h, dir)

	// Busy for 10 health intervals: healthy.
	if _, err := inst.Call(context.Background(), "sleep", []byte("500"), 0); err != nil {
		t.Fatal(err)
	}
	if st, reason := inst.State(); st != host.StateReady {
		t.Fatalf("after a long call: %s (%s)", st, reason)
	}

	pid := inst.Pid()
	stopProcess(t, pid)
	waitFor(t, 10*time.Second, "the health check to fail the capsule", func() bool {
		st, _ := inst.State()
		return st == host.StateFailed
	})
	if _, reason := inst.State(); !strings.Contains(reason, "health check failed") || !strings.Contains(reason, "did not answer the health check in time") {
		t.Fatalf("reason: %s", reason)
	}
	waitFor(t, 10*time.Second, "the hung shim to be killed", func() bool { return !processAlive(pid) })
	if env := failed.Poll(1 << 20); len(env.Messages) != 1 {
		t.Fatalf("health.failed events: %d", len(env.Messages))
	}
}
