package sandbox

import (
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// The landlock layer: an allow-list of the filesystem, no TCP (unless Network), and (ABI 6) no
// signals or abstract unix sockets out of the sandbox. It is what keeps the process from reading
// the home directory or writing outside its workspace whatever its uid, and it survives exec.

// systemDirs are readable and executable by every sandboxed process, where they exist.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}

// Device nodes: read-write sinks and sources, and read-only randomness.
var (
	rwDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty"}
	roDevices = []string{"/dev/urandom", "/dev/random"}
)

// applyLandlock restricts the helper, and so the program, to the allow-list. It uses the newest
// ABI go-landlock knows, in best-effort mode: an older kernel enforces what it can (the host
// reports the ABI). Unix sockets: from ABI 9, connecting to a socket created outside the sandbox
// needs the resolve-unix right, given on the ReadOnly and ReadWrite paths (so a shim reaches the
// host's broker sockets when their directory is listed), never on the system directories.
func (h *helper) applyLandlock() error {
	cfg := landlock.V11.BestEffort()
	if h.spec.Network {
		cfg.HandledAccessNet = 0 // TCP and UDP as the host has them
	}
	var rules []landlock.Rule
	ro := func(paths []string, optional, unixSockets bool) error {
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				if optional && os.IsNotExist(err) {
					continue
				}
				return err
			}
			// A directory rule on a file makes the whole ruleset fail, so files get file rules.
			switch {
			case fi.IsDir() && unixSockets:
				rules = append(rules, landlock.RODirs(p).WithResolveUnix())
			case fi.IsDir():
				rules = append(rules, landlock.RODirs(p))
			default:
				rules = append(rules, landlock.ROFiles(p))
			}
		}
		return nil
	}
	rw := func(paths []string, optional bool) error {
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				if optional && os.IsNotExist(err) {
					continue
				}
				return err
			}
			if fi.IsDir() {
				rules = append(rules, landlock.RWDirs(p).WithRefer().WithResolveUnix())
			} else {
				rules = append(rules, landlock.RWFiles(p).WithResolveUnix())
			}
		}
		return nil
	}
	tmp := h.spec.PrivateTmp
	if tmp != "" && h.spec.MountNS {
		tmp = "/tmp" // the private one is mounted there
	}
	var tmps []string
	if tmp != "" {
		tmps = []string{tmp}
	}
	for _, err := range []error{
		ro(systemDirs, true, false),
		ro([]string{"/proc"}, true, false),
		ro(roDevices, true, false),
		rw(rwDevices, true),
		ro(h.spec.ReadOnly, false, true),
		ro([]string{h.path}, true, false), // a missing program fails at exec, with the error exec gives
		rw(h.spec.ReadWrite, false),
		rw(tmps, false),
	} {
		if err != nil {
			return err
		}
	}
	if err := cfg.Restrict(rules...); err != nil {
		return fmt.Errorf("%v: %w", cfg, err)
	}
	return nil
}
