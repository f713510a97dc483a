package sandbox

import (
	"errors"
	"fmt"
	"os"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// The landlock layer: an allow-list of the filesystem, no TCP (unless Network), and from ABI 6 no
// signals or abstract unix sockets out of the sandbox. It is what keeps the process from reading
// the home directory or writing outside its workspace whatever its uid, and it survives exec.
//
// The ruleset is enforced on the helper's locked thread only, which is the thread that execs or
// forks the program: the program's credentials, landlock domain included, are that thread's.
// go-landlock's Restrict would enforce it on every thread through libpsx, which (in a cgo build)
// looks its threads up in /proc by pid and spins forever in a pid namespace without a fresh
// /proc; its syscall package and its rights are used instead. The helper's other threads run
// only the Go runtime; the program cannot reach into them (seccomp denies ptrace, and the helper
// is not dumpable, which closes /proc/PID/mem). From ABI 8 the kernel enforces on all threads at
// once (TSYNC), and the helper asks it to.

// systemDirs are readable and executable by every sandboxed process, where they exist.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}

// Device nodes: read-write sinks and sources and the terminal, and read-only randomness.
var (
	rwDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty"}
	roDevices = []string{"/dev/urandom", "/dev/random"}
)

// Sets of landlock filesystem rights.
const (
	llRead  = ll.AccessFSExecute | ll.AccessFSReadFile | ll.AccessFSReadDir
	llWrite = ll.AccessFSWriteFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeChar |
		ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo |
		ll.AccessFSMakeBlock | ll.AccessFSMakeSym | ll.AccessFSTruncate
	// llFile are the rights that mean something on a file (a rule for a file may hold no other).
	llFile = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
)

// llHandledFS is what landlock ABI abi can restrict on the filesystem: everything it knows.
func llHandledFS(abi int) uint64 {
	switch {
	case abi >= 9:
		return 1<<17 - 1 // + resolve unix
	case abi >= 5:
		return 1<<16 - 1 // + ioctl on devices
	case abi >= 3:
		return 1<<15 - 1 // + truncate
	case abi >= 2:
		return 1<<14 - 1 // + refer
	case abi >= 1:
		return 1<<13 - 1
	}
	return 0
}

// llHandledNet is what landlock ABI abi can restrict on the network.
func llHandledNet(abi int) uint64 {
	switch {
	case abi >= 10:
		return ll.AccessNetBindTCP | ll.AccessNetConnectTCP | ll.AccessNetBindUDP | ll.AccessNetConnectSendUDP
	case abi >= 4:
		return ll.AccessNetBindTCP | ll.AccessNetConnectTCP
	}
	return 0
}

// llRule is one path and the rights under it.
type llRule struct {
	path   string
	access uint64
}

// applyLandlock restricts the helper's thread, and so the program, to the allow-list.
func (h *helper) applyLandlock() error {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil {
		return fmt.Errorf("ABI version: %w", err)
	}
	rules, err := h.landlockRules()
	if err != nil {
		return err
	}
	attr := ll.RulesetAttr{HandledAccessFS: llHandledFS(abi), HandledAccessNet: llHandledNet(abi)}
	if h.spec.Network {
		attr.HandledAccessNet = 0 // TCP and UDP as the host has them
	}
	if abi >= 6 {
		attr.Scoped = ll.ScopeAbstractUnixSocket | ll.ScopeSignal
	}
	fd, err := ll.LandlockCreateRuleset(&attr, 0)
	if err != nil {
		return fmt.Errorf("create the ruleset (ABI %d): %w", abi, err)
	}
	defer unix.Close(fd)
	for _, r := range rules {
		if err := addPathRule(fd, r.path, r.access&attr.HandledAccessFS); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	var flags uint32
	if abi >= 8 {
		flags = ll.FlagRestrictSelfTSync
	}
	if err := ll.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("restrict self (ABI %d): %w", abi, err)
	}
	return nil
}

// addPathRule allows access under path. A directory right on a file is an error to the kernel,
// so a file's rule keeps only the file rights.
func addPathRule(ruleset int, path string, access uint64) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= llFile
	}
	if access == 0 {
		return nil // nothing this kernel restricts; an empty rule is an error
	}
	if err := ll.LandlockAddPathBeneathRule(ruleset, &ll.PathBeneathAttr{ParentFd: fd, AllowedAccess: access}, 0); err != nil {
		return fmt.Errorf("allow %s: %w", path, err)
	}
	return nil
}

// landlockRules lists what the program may reach: the system directories, /proc and a few
// devices, its own executable, and the spec's paths. Unix sockets: from ABI 9, connecting to a
// socket made outside the sandbox needs the resolve-unix right, given on the spec's ReadOnly and
// ReadWrite paths (so a shim reaches the host's broker sockets when their directory is listed),
// never on the system directories.
func (h *helper) landlockRules() ([]llRule, error) {
	var rules []llRule
	add := func(paths []string, access uint64, optional bool) error {
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				if optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return err
			}
			rules = append(rules, llRule{p, access})
		}
		return nil
	}
	rw := uint64(llRead | llWrite | ll.AccessFSRefer | ll.AccessFSResolveUnix)
	tmp := h.spec.PrivateTmp
	if tmp != "" && h.spec.MountNS {
		tmp = "/tmp" // the private one is mounted there
	}
	var tmps []string
	if tmp != "" {
		tmps = []string{tmp}
	}
	if h.spec.MountNS {
		tmps = append(tmps, "/dev/shm") // private then; missing, it is not asked for
	}
	for _, err := range []error{
		add(systemDirs, llRead, true),
		add([]string{"/proc"}, llRead, true),
		add(roDevices, ll.AccessFSReadFile, true),
		add(rwDevices, ll.AccessFSReadFile|ll.AccessFSWriteFile|ll.AccessFSTruncate|ll.AccessFSIoctlDev, true),
		add(h.spec.ReadOnly, llRead|ll.AccessFSResolveUnix, false),
		// A missing program fails at exec, with the error exec gives.
		add([]string{h.path}, ll.AccessFSExecute|ll.AccessFSReadFile, true),
		add(h.spec.ReadWrite, rw, false),
		add(tmps, rw, true),
	} {
		if err != nil {
			return nil, err
		}
	}
	return rules, nil
}
