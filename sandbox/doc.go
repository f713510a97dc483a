// Package sandbox confines the processes astrid-host starts: the shims, and the processes
// capsules ask for (docs/architecture.md#c-a-spawn).
//
// Every process gets the process layer (its own process group, SIGKILL when the host dies; see
// ProcessAttr). Under policies Required and BestEffort it is started through a helper, astrid-host
// re-executed as "astrid-host __sandbox-exec SPEC -- PROGRAM ARGS...", because Go's os/exec has no
// hook between fork and exec and landlock and seccomp act on the calling process. The host clones
// the helper into new user, pid, network, IPC, UTS and mount namespaces; the helper joins its
// cgroup, sets up the mount namespace, drops its capabilities, sets the rlimits, applies landlock
// and seccomp, and then either becomes the program (Spec.Exec: the shims) or starts it and stays
// as the init of its pid namespace, reaping orphans and reporting the program's exit.
//
// Probe finds, once, which layers the machine offers and why the others are missing; Support
// reports them (astrid-host doctor prints Support.Report). Under policy Required a missing
// namespace or landlock stops every process with an error naming the layer and the flag that
// relaxes it; under BestEffort each process gets what there is and Cmd.Layers says what that was.
//
// Starting a helper costs several times a plain fork and exec (a Go process, package
// initialisation included, and namespaces that are slow to make). A Pool keeps warm helpers that
// run one program after another and clean up between them, so that a spawn costs about what an
// unconfined one does; the host runs capsules' processes from one Pool per capsule instance.
//
// A Spawner is the helper run once as "__sandbox-spawn": it starts, for the host, the commands
// Command prepared, so that each start clones the spawner's few megabytes rather than the host's
// address space (a clone that makes a user namespace cannot be a vfork). The host starts its
// shims through one. The processes it starts have it as their parent: they end when it does, and
// it ends with the host. Where it may, it makes one empty network namespace that the processes
// it starts without Network share, instead of each getting its own (see sharednet.go).
package sandbox
