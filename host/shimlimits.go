package host

import "github.com/astrid-go/astrid/sandbox"

// The limits of a shim's cgroup, where the sandbox has the cgroup layer (astrid-host doctor says
// whether it does): a shim a guest escaped into must not take the machine's memory, nor fork
// without end.
const (
	// ShimMemoryOverhead is what a shim's memory cgroup allows on top of the capsule's
	// [limits] memory (which bounds everything its Store holds): the Go runtime, wasmtime, the
	// capsule's compiled code, the gRPC buffers of calls and host-function results (tens of
	// MiB at most), and compiling the module, the peak (about 130 MiB for a 3 MiB Go guest).
	// A module whose compilation needs more fails to load: the kernel kills the shim.
	ShimMemoryOverhead = 1 << 30
	// ShimPids bounds a shim's tasks, threads included (the Go runtime's, wasmtime's compiler
	// threads, one per CPU): far above what a shim uses, far below a fork bomb.
	ShimPids = 1024
)

// shimCgroup is the cgroup of a shim whose capsule has [limits] memory of memory bytes.
func shimCgroup(memory uint64) sandbox.CgroupLimits {
	return sandbox.CgroupLimits{Pids: ShimPids, MemoryBytes: int64(memory) + ShimMemoryOverhead}
}
