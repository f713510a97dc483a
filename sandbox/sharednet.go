package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The spawner's shared network namespace. A network namespace of a process's own costs its start
// copy_net_ns at the clone, then cleanup_net in a kworker at its end (~3% of a 50-shim boot's
// CPU on a 2-core VM, see docs/architecture.md). What a process without
// Network needs from it is to reach nothing: no interface, no other process's abstract unix
// socket. An empty namespace does that for every process in it at once:
//
//   - It has only a loopback, and that is down: TCP and UDP, even between two processes in it,
//     fail with ENETUNREACH. Nobody can bring it up: the namespace belongs to the spawner's user
//     namespace, and a process in it either has a user namespace of its own (and so no capability
//     over the spawner's) or has dropped every capability before its program runs.
//   - Abstract unix sockets are per network namespace, so processes sharing one could meet there.
//     Landlock's scope (ABI 6) keeps a sandboxed process from connecting to an abstract socket made
//     outside its own landlock domain, and every process gets a domain of its own: that is the
//     condition for sharing (netShareable).
//   - Unix sockets at a path are not the network namespace's business (their directories are, and
//     the mount namespace and landlock's resolve-unix right keep those apart). /proc/net of a
//     process in the shared namespace lists the other processes' sockets there (names, not access).
//
// The spawner makes the namespace when it starts and forks the processes that share it from
// inside it; every other process it starts is forked from the namespace the spawner was started
// in, so a process with Network keeps the host's network. Making a namespace without a user
// namespace needs CAP_SYS_ADMIN: a spawner without it (a host that is not root) makes none, and
// each process then gets its own, as a process the host starts itself always does.

// netShareable reports whether a process with layers, on a kernel of landlock ABI abi, may share
// the spawner's empty network namespace instead of getting one of its own: it wants no network
// (it has the netns layer) and its landlock domain scopes abstract unix sockets.
func netShareable(layers []Layer, abi int) bool {
	return containsLayer(layers, LayerNetNS) && containsLayer(layers, LayerLandlock) && abi >= 6
}

// sharedNet is the spawner's empty network namespace and the one it was started in, as
// descriptors, for its forking thread to switch between.
type sharedNet struct {
	home, empty int
}

// openSharedNet makes an empty network namespace and returns to the calling thread's own. The
// calling thread must be locked to its goroutine (setns acts on one thread). It returns nil when
// the spawner may not make one (no CAP_SYS_ADMIN) or the kernel has no network namespaces.
func openSharedNet() *sharedNet {
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		unix.Close(home)
		return nil
	}
	empty, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Setns(home, unix.CLONE_NEWNET)
	}
	if err != nil {
		// The thread is stuck in the empty namespace: a later Network process would get no
		// network. The spawner is of no use then; the host starts its processes itself.
		fmt.Fprintf(os.Stderr, "astrid sandbox: spawner: shared network namespace: %v\n", err)
		helperExit(127)
	}
	return &sharedNet{home: home, empty: empty}
}

// inside runs fork on the calling (locked) thread from inside the empty namespace, then returns
// the thread to its own. A thread that cannot return ends the spawner, as in openSharedNet.
func (n *sharedNet) inside(fork func() error) error {
	if err := unix.Setns(n.empty, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter the shared network namespace: %w", err)
	}
	err := fork()
	if berr := unix.Setns(n.home, unix.CLONE_NEWNET); berr != nil {
		fmt.Fprintf(os.Stderr, "astrid sandbox: spawner: leave the shared network namespace: %v\n", berr)
		helperExit(127)
	}
	return err
}
