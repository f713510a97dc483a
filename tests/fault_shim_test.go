package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/astrid-go/astrid/host"
)

// Faults of the victim's shim process: it is killed (idle or in a call), stopped, or loses its
// gRPC connections to the host; and a capsule that crashes as soon as it runs, over and over.

// crashLoopBudget is the crash-loop capsule's [restart] max_attempts.
const crashLoopBudget = 3

// crashAtOnceWAT is a run-loop capsule whose run export traps at once, as a capsule that crashes
// on start does.
const crashAtOnceWAT = `(module (func (export "run") (result i32) unreachable))`

func shimFaults() []faultCase {
	kill := func(t *testing.T, r *faultRun) {
		if err := syscall.Kill(r.victim.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	return []faultCase{
		{name: "shim SIGKILLed", inject: kill, outcome: restarts, reason: "was killed by signal killed"},
		{name: "shim SIGKILLed mid-call", outcome: restarts, reason: "was killed by signal killed", inject: func(t *testing.T, r *faultRun) {
			errc := make(chan error, 1)
			go func() {
				_, err := r.victim.Call(context.Background(), "sleep", []byte("30000"), time.Minute)
				errc <- err
			}()
			waitFor(t, 10*time.Second, "the call to run", func() bool { return storeBusy(r.victim) })
			r.t0 = time.Now()
			kill(t, r)
			select {
			case err := <-errc:
				var ce *host.CallError
				if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "was killed by signal killed during the call") {
					t.Fatalf("the call in flight: %v, want a CallError saying the shim was killed", err)
				}
				t.Logf("the call in flight failed after %s: %v", time.Since(r.t0), err)
			case <-time.After(eventTimeout):
				t.Fatal("the call in flight did not end when its shim was killed")
			}
		}},
		{name: "shim SIGSTOPped (health check)", outcome: restarts, health: true,
			reason: "health check failed: capsule faulty: the shim did not answer the health check in time",
			inject: func(t *testing.T, r *faultRun) { stopProcess(t, r.victim.Pid()) }},
		{name: "shim's connections closed", outcome: restarts,
			// Its sockets: go-plugin's gRPC connection (the call connection is two pipes, which
			// no one else can close while the shim lives).
			reason: "the shim's gRPC connection to the host ended while it ran; it was killed",
			inject: func(t *testing.T, r *faultRun) {
				closed := closeConnections(t, r.victim.Pid())
				t.Logf("shut down %d sockets of the shim", closed)
			}},
		{name: "crash loop spends the restart budget", outcome: exhausted,
			reason: "the run loop failed: call to run trapped: wasm `unreachable` instruction executed", trap: "unreachable",
			backtrace: "module offset",
			victim: func(t *testing.T) (string, host.LoadOptions) {
				restart := fmt.Sprintf("[restart]\nbackoff = \"10ms\"\nmax_backoff = \"50ms\"\nmax_attempts = %d\n", crashLoopBudget)
				return watCapsule(t, "crashloop", crashAtOnceWAT, restart), host.LoadOptions{RunLoop: true}
			},
			inject: func(t *testing.T, r *faultRun) { r.restartBudget = crashLoopBudget }},
	}
}

// watCapsule makes a capsule directory named name whose module is wat, with extra appended to
// its Capsule.toml.
func watCapsule(t testing.TB, name, wat, extra string) string {
	t.Helper()
	wasm, err := os.ReadFile(watModule(t, name, wat))
	if err != nil {
		t.Fatal(err)
	}
	return binCapsule(t, name, wasm, extra)
}

// closeConnections shuts down every socket process pid holds (go-plugin's listener and the
// host's connection to it; the shim's connection to the host's services too, once a call has
// made it), from the test process and without the shim's help: pidfd_getfd duplicates each one into the test, and
// shutdown(2) on the duplicate ends the connection for the shim too, since both descriptors
// share the socket. It returns how many sockets it shut down.
func closeConnections(t *testing.T, pid int) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(pidfd)
	// go-plugin's listener, and the host's connection to it, which may still be arriving.
	waitFor(t, 10*time.Second, "the shim to hold its 2 sockets", func() bool { return len(sockets(t, pid)) >= 2 })
	closed := 0
	for fd, link := range sockets(t, pid) {
		dup, err := unix.PidfdGetfd(pidfd, fd, 0)
		if err != nil {
			t.Fatalf("pidfd_getfd(%d, %d): %v", pid, fd, err)
		}
		err = unix.Shutdown(dup, unix.SHUT_RDWR)
		unix.Close(dup)
		if err != nil && !errors.Is(err, unix.ENOTCONN) {
			t.Fatalf("shutdown of the shim's %s (fd %d): %v", link, fd, err)
		}
		closed++
	}
	return closed
}

// sockets returns the socket descriptors process pid holds, each with its /proc link
// ("socket:[inode]"): at least go-plugin's listener, the host's connection to it, and the
// connection to the host's services, for a shim.
func sockets(t *testing.T, pid int) map[int]string {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	found := make(map[int]string)
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		found[fd] = link
	}
	return found
}
