package tests

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/shared/pb"
)

// TestHostStaysHealthyAfterGuestFailures: every kind of guest failure is an error for that call
// only; the same shim process serves the next call from a fresh Store.
func TestHostStaysHealthyAfterGuestFailures(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "faulty")
	pid := inst.Pid()
	ctx := context.Background()

	failures := []struct {
		export string
		input  string
		kind   pb.GuestError_Kind
	}{
		{"panic", "", pb.GuestError_PANIC},
		{"fail", "nope", pb.GuestError_GUEST_ERROR},
		{"spin", "", pb.GuestError_TIMEOUT},
		{"hog", "", pb.GuestError_OUT_OF_MEMORY},
		{"recurse", "", pb.GuestError_STACK_OVERFLOW},
		{"exit", "", pb.GuestError_EXIT},
		{"missing", "", pb.GuestError_NO_SUCH_EXPORT},
	}
	for _, f := range failures {
		_, err := inst.Call(ctx, f.export, []byte(f.input), 0)
		var ge *host.GuestError
		if !errors.As(err, &ge) || ge.Kind != f.kind {
			t.Fatalf("call %s: error %v, want a guest error of kind %s", f.export, err, f.kind)
		}
		out, err := inst.Call(ctx, "echo", []byte("still here"), 0)
		if err != nil || string(out) != "still here" {
			t.Fatalf("echo after %s: %q, %v", f.export, out, err)
		}
		if st, reason := inst.State(); st != host.StateReady {
			t.Fatalf("after %s: state %s (%s), want ready", f.export, st, reason)
		}
	}
	if inst.Pid() != pid || !processAlive(pid) {
		t.Fatalf("the shim changed or died: pid %d -> %d", pid, inst.Pid())
	}
}

// TestShimKilledMidCall: a shim SIGKILLed during a call turns into a clear error for that call,
// and the instance is Failed with the reason; nothing hangs.
func TestShimKilledMidCall(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "faulty")
	pid := inst.Pid()

	errc := make(chan error, 1)
	go func() {
		_, err := inst.Call(context.Background(), "sleep", []byte("60000"), time.Minute)
		errc <- err
	}()
	waitFor(t, 10*time.Second, "the call to be running in the shim", func() bool { return storeBusy(inst) })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not return after its shim was killed")
	}
	var ce *host.CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "killed by signal killed") {
		t.Fatalf("error %v, want a CallError saying the shim was killed", err)
	}
	waitFor(t, 5*time.Second, "the instance to be marked failed", func() bool {
		st, _ := inst.State()
		return st == host.StateFailed
	})
	if _, reason := inst.State(); !strings.Contains(reason, "killed by signal killed") {
		t.Fatalf("failure reason %q does not say the shim was killed", reason)
	}
	if _, err := inst.Call(context.Background(), "echo", nil, 0); err == nil || !strings.Contains(err.Error(), "the capsule is failed") {
		t.Fatalf("call on a failed instance: %v", err)
	}
}

// TestModuleCache: the second start of a capsule deserialises the cached artefact instead of
// compiling, and a corrupt artefact is replaced rather than trusted.
func TestModuleCache(t *testing.T) {
	h := newHost(t, func(c *host.Config) { c.StateDir = t.TempDir() }) // a cache of its own
	first, res := loadCapsule(t, h, "hello")
	if !res.Compiled {
		t.Fatal("first load did not compile")
	}
	first.Stop(context.Background())
	second, res := loadCapsule(t, h, "hello")
	if res.Compiled {
		t.Fatal("second load compiled again")
	}
	if out, err := second.Call(context.Background(), "greet", []byte("cache"), 0); err != nil || string(out) != "Hello, cache!" {
		t.Fatalf("call on the cached module: %q, %v", out, err)
	}
}

// TestShutdownLeavesNothing: stopping the host ends every shim it started.
func TestShutdownLeavesNothing(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	var pids []int
	for _, name := range []string{"hello", "faulty"} {
		inst, _ := loadCapsule(t, h, name)
		pids = append(pids, inst.Pid())
	}
	// One capsule is busy in a call when the host shuts down.
	busy := h.Instances()[1]
	done := make(chan error, 1)
	go func() {
		_, err := busy.Call(context.Background(), "spin", nil, time.Minute)
		done <- err
	}()
	waitFor(t, 10*time.Second, "the spinning call to start", func() bool { return storeBusy(busy) })
	h.Shutdown(context.Background())
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("shim %d still alive after shutdown", pid)
		}
	}
	if err := <-done; err == nil {
		t.Error("the call interrupted by shutdown succeeded")
	}
	for _, inst := range h.Instances() {
		if st, _ := inst.State(); st != host.StateStopped {
			t.Errorf("%s: state %s after shutdown, want stopped", inst.ID(), st)
		}
	}
}

// TestUnloadInterruptsSleep: unloading a capsule whose guest sleeps (WASI poll_oneoff, Go's
// time.Sleep) ends the sleep at once: the call fails as cancelled and the shim exits on its own.
func TestUnloadInterruptsSleep(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "faulty")
	errc := make(chan error, 1)
	go func() {
		_, err := inst.Call(context.Background(), "sleep", []byte("600000"), time.Hour)
		errc <- err
	}()
	waitFor(t, 10*time.Second, "the guest to be asleep", func() bool { return storeBusy(inst) })
	inst.Stop(context.Background())
	var err error
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("the sleeping call did not end when the capsule unloaded")
	}
	var ge *host.GuestError
	var ce *host.CallError
	switch {
	case errors.As(err, &ge) && ge.Kind == pb.GuestError_CANCELLED:
	case errors.As(err, &ce): // the shim exited before the answer went out
	default:
		t.Fatalf("call interrupted by unload: %v", err)
	}
	if st, _ := inst.State(); st != host.StateStopped {
		t.Fatalf("state %s, want stopped", st)
	}
}

// TestStoppedShimIsKilled: a SIGSTOPped shim answers nothing, and go-plugin's graceful Kill
// would wait for it forever; unloading the capsule still ends the process, within the shutdown
// request's timeout and the kill grace.
func TestStoppedShimIsKilled(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "faulty")
	pid := inst.Pid()
	stopProcess(t, pid)
	stopped := make(chan struct{})
	go func() {
		inst.Stop(context.Background())
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Stop hung on a stopped shim")
	}
	if processAlive(pid) {
		t.Fatalf("stopped shim %d is still alive", pid)
	}
	if st, _ := inst.State(); st != host.StateStopped {
		t.Fatalf("state %s, want stopped", st)
	}
}

// TestUnresponsiveShimFailsTheCall: a call to a shim that stopped answering (SIGSTOP) returns
// once the call's time limit and the host's grace have passed, and the shim is killed.
func TestUnresponsiveShimFailsTheCall(t *testing.T) {
	checkLeaks(t)
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "faulty")
	pid := inst.Pid()
	stopProcess(t, pid)
	_, err := inst.Call(context.Background(), "echo", []byte("x"), 100*time.Millisecond)
	var ce *host.CallError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "the shim did not answer within the call's time limit plus 5s; it was killed") {
		t.Fatalf("call to a stopped shim: %v", err)
	}
	if st, _ := inst.State(); st != host.StateFailed {
		t.Fatalf("state %s, want failed", st)
	}
	waitFor(t, 5*time.Second, "the stopped shim to be killed", func() bool { return !processAlive(pid) })
}

// stopProcess SIGSTOPs pid and waits until the kernel reports it stopped (signals are delivered
// asynchronously).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the shim to be stopped", func() bool { return processState(pid) == 'T' })
}

// checkLeaks fails the test if goroutines started during it are still running once it and its
// cleanups (the host's shutdown among them) are done. Call it before newHost.
func checkLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// storeBusy reports whether the instance's Store is held by a running call: a health check, which
// needs the Store, cannot get it within a short deadline.
func storeBusy(inst *host.Instance) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	return errors.Is(inst.Health(ctx), host.ErrBusy)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
