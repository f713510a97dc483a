package sandbox

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
)

// Policy says what the host does when a sandbox layer is unavailable on this machine.
type Policy int

const (
	// Required (the default) refuses to start a process when namespaces or landlock are
	// unavailable, naming the missing layer and the flag that relaxes it.
	Required Policy = iota
	// BestEffort applies every layer the machine supports and warns about the rest.
	BestEffort
	// Off applies only the process layer (own process group, SIGKILL on the host's death). For
	// tests and for machines where nothing else works.
	Off
)

// PolicyFlag is the command-line flag that chooses the policy; errors name it.
const PolicyFlag = "--sandbox"

// ParsePolicy parses a --sandbox value: required, best-effort or off.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "required":
		return Required, nil
	case "best-effort":
		return BestEffort, nil
	case "off":
		return Off, nil
	}
	return 0, fmt.Errorf("sandbox policy %q is not valid: use required, best-effort or off", s)
}

// String is the policy's PolicyFlag value.
func (p Policy) String() string {
	switch p {
	case Required:
		return "required"
	case BestEffort:
		return "best-effort"
	case Off:
		return "off"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Layer names one confinement layer (README.md#the-sandbox).
type Layer string

// The layers, in the order the helper applies them.
const (
	LayerCgroup   Layer = "cgroup"   // pids and memory limits, where a cgroup hierarchy is writable
	LayerUserNS   Layer = "userns"   // user namespace (identity-mapped uid and gid)
	LayerPIDNS    Layer = "pidns"    // pid namespace: the tree dies with its init; the host is invisible
	LayerNetNS    Layer = "netns"    // network namespace: no network (skipped with process_network)
	LayerIPCNS    Layer = "ipcns"    // System V IPC and POSIX message queue namespace
	LayerUTSNS    Layer = "utsns"    // hostname namespace
	LayerMountNS  Layer = "mountns"  // mount namespace: private /proc and /tmp
	LayerRlimits  Layer = "rlimits"  // NOFILE, CORE=0, FSIZE
	LayerLandlock Layer = "landlock" // filesystem allow-list, no TCP
	LayerSeccomp  Layer = "seccomp"  // syscall deny-list with no_new_privs
)

// Exit is how a process ended: its exit code, or the signal that killed it (Code is then -1).
type Exit struct {
	Code   int
	Signal syscall.Signal // 0 unless killed by a signal
}

// String says how the process ended, as os.ProcessState does.
func (e Exit) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%s)", int(e.Signal), e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Rlimits are the resource limits a sandboxed process gets; RLIMIT_CORE is always 0. Never
// RLIMIT_AS (wasmtime reserves 4 GiB per memory) nor RLIMIT_NPROC (it counts every process of the
// host's uid).
type Rlimits struct {
	OpenFiles uint64 // RLIMIT_NOFILE; 0 means DefaultOpenFiles
	FileSize  uint64 // RLIMIT_FSIZE in bytes; 0 means DefaultFileSize
}

// Defaults for Rlimits.
const (
	DefaultOpenFiles = 1024
	DefaultFileSize  = 1 << 30 // 1 GiB
)

// CgroupLimits are the limits of the cgroup a process runs in, where the machine offers one.
type CgroupLimits struct {
	Pids        int   // pids.max; 0 means no cgroup limit
	MemoryBytes int64 // memory.max (v2) or memory.limit_in_bytes (v1); 0 means none
}

// Spec describes one process to start confined.
type Spec struct {
	// Path is the absolute path of the program; Args are its arguments (not including argv[0]).
	Path string
	Args []string
	// Env is the program's whole environment. In Exec mode, variables a launcher such as go-plugin
	// appends to Cmd.Env reach the program too.
	Env []string
	// Dir is the working directory ("" = the helper's).
	Dir string
	// Exec replaces the helper with the program (the shims: the program keeps the helper's pid, so
	// go-plugin's own kill reaches it). Otherwise the helper stays as the init of the pid namespace,
	// reaps what the program leaves behind, reports its exit status, and its death ends the tree
	// (processes capsules spawn).
	Exec bool
	// Network keeps the host's network: no network namespace, and landlock allows TCP
	// (process_network = true). Without it the process has no network at all.
	Network bool
	// ReadOnly are the extra files and directories the process may read and execute, besides the
	// system directories (/usr, /bin, /sbin, /lib, /lib64, /etc, /opt and the needed /dev nodes).
	ReadOnly []string
	// ReadWrite are the directories the process may write (the workspace, a shim's socket dir).
	ReadWrite []string
	// Hidden are paths the process may neither read nor write even where they lie inside
	// ReadOnly or ReadWrite paths: the host's state directory (its module cache), which is
	// inside the workspace when the host runs from the home directory. Landlock is an allow-list
	// and cannot carve a path out of an allowed one, so this takes the mount namespace: each
	// existing hidden directory is covered with an empty read-only tmpfs, a file with the null
	// device, and the ReadOnly and ReadWrite paths beneath one are bound back. Without a mount
	// namespace a hidden path inside an allowed one stays reachable: policy Required refuses
	// such a process (naming the path), BestEffort starts it and lists the path in
	// Cmd.Exposed.
	Hidden []string
	// PrivateTmp is a directory only this process uses, made by the caller. It is mounted on /tmp
	// where a mount namespace is available and TMPDIR points at it otherwise. "" = no writable tmp.
	PrivateTmp string
	Rlimits    Rlimits
	Cgroup     CgroupLimits
}

// Cmd is a confined process, started through the helper, a Pool's warm helper, or (under policy
// Off) directly.
type Cmd struct {
	// Cmd is the helper's command. The caller may set Stdin, Stdout and Stderr (or take pipes)
	// before Start and must not change anything else. In Exec mode the caller may hand it to a
	// launcher such as go-plugin instead of calling Start. For a Pool's Cmd only Stdin, Stdout
	// and Stderr (*os.File or nil) are used, and after Start Process is the warm helper's.
	*exec.Cmd
	// Layers are the layers this process gets, in the order applied.
	Layers []Layer
	// Exposed are the Spec's Hidden paths this process can still reach, because it has no
	// mount namespace to hide them (policy BestEffort): the caller should warn.
	Exposed []string

	// netShareable: a Spawner with an empty network namespace may start it in that one rather
	// than a new one (see sharednet.go).
	netShareable bool

	status  *statusPipe // the helper's status channel; nil for a process started without it
	warm    *warmRun    // for a process run by a Pool's warm helper; nil otherwise
	cleanup func()      // run once the process is waited for or closed (a Pool's private tmp)

	cleanupOnce sync.Once

	// Without a helper (policy Off): mu orders Signal and Kill before the reap, which sets
	// reaped.
	mu     sync.Mutex
	reaped bool
}

// HelperArg is the hidden sub-command under which the helper binary (astrid-sandbox, or
// astrid-host re-executing itself) runs HelperMain.
const HelperArg = "__sandbox-exec"

// ExecTarget makes an exec.Cmd for spec without any sandbox: only the process layer (own process
// group, SIGKILL on the parent's death). It is what policy Off runs.
func execTarget(spec Spec) *exec.Cmd {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append([]string{}, spec.Env...) // never nil: nil would be the host's environment
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = ProcessAttr()
	return cmd
}
