package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeArg is the helper's sub-command for probing namespaces: "HelperArg probe FLAGS".
const probeArg = "probe"

// nsLayers are the namespace layers, in the order they are probed one by one.
var nsLayers = []Layer{LayerUserNS, LayerPIDNS, LayerNetNS, LayerIPCNS, LayerUTSNS, LayerMountNS}

// Probe finds which layers this machine offers, once, at start-up. It starts helper (the binary
// that runs HelperMain: astrid-host itself) in every namespace at once, and does what the helper
// will do in them, so a layer is only reported available if the helper can really use it; only
// when that fails does it try the namespaces one by one to say which is missing and why. The rest
// is asked of the kernel directly. It takes a few milliseconds; the first Probe of a process also
// removes the cgroups that hosts killed before they could remove their own left behind (bounded
// by cgroupSweepBudget).
func Probe(helper string) *Support {
	s := &Support{layers: map[Layer]layerStatus{}}
	s.layers[LayerRlimits] = layerStatus{on: true, detail: "NOFILE, CORE=0, FSIZE"}
	probeNamespaces(helper, s)
	s.landlockABI, s.layers[LayerLandlock] = probeLandlock()
	s.layers[LayerSeccomp] = probeSeccomp()
	root, detail, why := probeCgroup()
	s.cgroup = root
	// The first use of the cgroup root in this process: remove what dead hosts left under it.
	s.swept = root.sweepOnce()
	s.layers[LayerCgroup] = layerStatus{on: root != nil, detail: detail, why: why}
	return s
}

// probeNamespaces fills in the namespace layers.
func probeNamespaces(helper string, s *Support) {
	var all uintptr
	for _, l := range nsLayers {
		all |= cloneFlag[l]
	}
	if err := tryNamespaces(helper, all); err == nil {
		for _, l := range nsLayers {
			s.layers[l] = layerStatus{on: true, detail: nsDetail[l]}
		}
		return
	}
	// Something is missing: find what, one namespace at a time.
	var base uintptr
	if err := tryNamespaces(helper, syscall.CLONE_NEWUSER); err != nil {
		s.layers[LayerUserNS] = layerStatus{why: usernsWhy(err)}
	} else {
		s.layers[LayerUserNS] = layerStatus{on: true, detail: nsDetail[LayerUserNS]}
		base = syscall.CLONE_NEWUSER
	}
	for _, l := range nsLayers[1:] {
		flags := base | cloneFlag[l]
		if l == LayerMountNS && s.layers[LayerPIDNS].on {
			flags |= syscall.CLONE_NEWPID // the fresh /proc needs its own pid namespace
		}
		if err := tryNamespaces(helper, flags); err != nil {
			why := err.Error()
			if base == 0 && os.Geteuid() != 0 {
				why = "needs a user namespace (unavailable) or root: " + why
			}
			s.layers[l] = layerStatus{why: why}
			continue
		}
		s.layers[l] = layerStatus{on: true, detail: nsDetail[l]}
	}
}

// nsDetail describes what each available namespace layer gives.
var nsDetail = map[Layer]string{
	LayerUserNS:  "identity-mapped uid and gid, no capabilities",
	LayerPIDNS:   "the helper is pid 1",
	LayerNetNS:   "loopback only, down",
	LayerIPCNS:   "private",
	LayerUTSNS:   "private",
	LayerMountNS: "fresh /proc, read-only remount and tmpfs work",
}

// tryNamespaces starts the helper's probe in the namespaces flags, as the helper would be.
func tryNamespaces(helper string, flags uintptr) error {
	cmd := exec.Command(helper, HelperArg, probeArg, strconv.FormatUint(uint64(flags), 16))
	cmd.Env = []string{} // nothing of the host's
	attr := ProcessAttr()
	attr.Cloneflags = flags
	if flags&syscall.CLONE_NEWUSER != 0 {
		identityMap(attr)
	}
	cmd.SysProcAttr = attr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return errors.New(strings.TrimPrefix(msg, "astrid sandbox: "))
		}
		return err
	}
	return nil
}

// probeMain is the helper's probe, in the namespaces the host gave it: it does the mount steps
// the helper will do there, and reports the first failure on stderr.
func probeMain(args []string) {
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "astrid sandbox: "+format+"\n", a...)
		helperExit(1)
	}
	if len(args) != 1 {
		fail("usage: %s %s FLAGS", HelperArg, probeArg)
	}
	flags, err := strconv.ParseUint(args[0], 16, 64)
	if err != nil {
		fail("flags: %v", err)
	}
	if flags&syscall.CLONE_NEWPID != 0 && os.Getpid() != 1 {
		fail("pid namespace: the helper is pid %d, not 1", os.Getpid())
	}
	if flags&syscall.CLONE_NEWNS != 0 {
		h := &helper{spec: wireSpec{PIDNS: flags&syscall.CLONE_NEWPID != 0}, path: "/"}
		if err := h.setupMounts(); err != nil {
			fail("mount namespace: %v", err)
		}
	}
	helperExit(0)
}

// usernsWhy explains a failure to make a user namespace, from the usual switches that disable
// them.
func usernsWhy(err error) string {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	switch {
	case read("/proc/sys/kernel/unprivileged_userns_clone") == "0" && os.Geteuid() != 0:
		return "user namespaces are disabled: /proc/sys/kernel/unprivileged_userns_clone is 0"
	case read("/proc/sys/user/max_user_namespaces") == "0":
		return "user namespaces are disabled: /proc/sys/user/max_user_namespaces is 0"
	case read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" && os.Geteuid() != 0:
		return "AppArmor restricts unprivileged user namespaces: /proc/sys/kernel/apparmor_restrict_unprivileged_userns is 1"
	}
	return "cannot create a user namespace: " + err.Error()
}

// probeLandlock asks the kernel for its landlock ABI version.
func probeLandlock() (int, layerStatus) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case errno == unix.ENOSYS:
		return 0, layerStatus{why: "the kernel has no landlock (built without CONFIG_SECURITY_LANDLOCK, or older than Linux 5.13)"}
	case errno == unix.EOPNOTSUPP:
		return 0, layerStatus{why: "landlock is not in the kernel's LSM list (add landlock to the lsm= boot parameter)"}
	case errno != 0:
		return 0, layerStatus{why: fmt.Sprintf("landlock_create_ruleset: %v", errno)}
	}
	detail := fmt.Sprintf("ABI %d", v)
	if v < 4 {
		detail += " (no TCP rules before ABI 4, Linux 6.7: only the network namespace keeps TCP out)"
	}
	return int(v), layerStatus{on: true, detail: detail}
}

// probeSeccomp checks that the kernel filters syscalls and that this build has a syscall table.
func probeSeccomp() layerStatus {
	if seccompArch == 0 {
		return layerStatus{why: fmt.Sprintf("this build has no syscall table for %s", runtime.GOARCH)}
	}
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == unix.EINVAL {
		return layerStatus{why: "the kernel is built without CONFIG_SECCOMP"}
	}
	for _, action := range []uint32{unix.SECCOMP_RET_ERRNO, unix.SECCOMP_RET_KILL_PROCESS} {
		a := action
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&a)))
		if errno != 0 {
			return layerStatus{why: fmt.Sprintf("the kernel cannot filter syscalls (built without CONFIG_SECCOMP_FILTER?): %v", errno)}
		}
	}
	if _, err := seccompFilter(); err != nil {
		return layerStatus{why: err.Error()}
	}
	return layerStatus{on: true, detail: fmt.Sprintf("deny-list of %d syscalls, clone with CLONE_NEW*, clone3 (%s)", len(deniedSyscalls)+len(archDenied), runtime.GOARCH)}
}
