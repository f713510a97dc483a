package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp layer: a deny-list in classic BPF, built here in pure Go (no libseccomp, so the host
// needs no cgo). It closes what the other layers leave open: the kernel interfaces a confined
// process never needs and that are the usual ways out (ptrace, mount, new namespaces, bpf, keyrings,
// module loading, perf, userfaultfd). An allow-list would be tighter but has to follow every
// program's syscalls (the shim's wasmtime, gRPC, libc); the deny-list cannot break a program that
// stays inside its sandbox.
//
// The filter allows only this build's native architecture: any other one (x86 32-bit calls on
// x86_64, x32 calls) would renumber the syscalls, so it kills the process instead.

// BPF opcodes (linux/filter.h).
const (
	bpfLdWAbs  = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfJeqK    = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgeK    = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	bpfJsetK   = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	bpfRetK    = 0x06 // BPF_RET | BPF_K
	seccompNr  = 0    // offsetof(struct seccomp_data, nr)
	seccompArc = 4    // offsetof(struct seccomp_data, arch)
	seccompA0  = 16   // offsetof(struct seccomp_data, args[0]), its low 32 bits on little-endian
)

// cloneNewFlags are the CLONE_NEW* bits of clone's flags (CLONE_NEWTIME shares its bit with the
// exit signal there and is only reachable through clone3 and unshare, which are closed anyway).
const cloneNewFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// bpfInsn is an instruction whose jumps name labels, resolved by assemble.
type bpfInsn struct {
	code   uint16
	k      uint32
	jt, jf string // "" is the next instruction
	label  string // this instruction's label
}

// seccompFilter builds the filter for this architecture.
func seccompFilter() ([]unix.SockFilter, error) {
	if seccompArch == 0 {
		return nil, fmt.Errorf("no syscall table for %s", runtime.GOARCH)
	}
	p := []bpfInsn{
		{code: bpfLdWAbs, k: seccompArc},
		{code: bpfJeqK, k: seccompArch, jt: "native", jf: "kill"},
		{code: bpfLdWAbs, k: seccompNr, label: "native"},
	}
	if seccompX32Bit != 0 {
		p = append(p, bpfInsn{code: bpfJgeK, k: seccompX32Bit, jt: "eperm"})
	}
	for _, nr := range append(deniedSyscalls, archDenied...) {
		p = append(p, bpfInsn{code: bpfJeqK, k: uint32(nr), jt: "eperm"})
	}
	p = append(p,
		// clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes libc fall
		// back to clone, whose flags it can check.
		bpfInsn{code: bpfJeqK, k: unix.SYS_CLONE3, jt: "enosys"},
		bpfInsn{code: bpfJeqK, k: unix.SYS_CLONE, jf: "allow"},
		bpfInsn{code: bpfLdWAbs, k: seccompA0},
		bpfInsn{code: bpfJsetK, k: cloneNewFlags, jt: "eperm", jf: "allow"},
		bpfInsn{code: bpfRetK, k: unix.SECCOMP_RET_ALLOW, label: "allow"},
		bpfInsn{code: bpfRetK, k: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM), label: "eperm"},
		bpfInsn{code: bpfRetK, k: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS), label: "enosys"},
		bpfInsn{code: bpfRetK, k: unix.SECCOMP_RET_KILL_PROCESS, label: "kill"},
	)
	return assemble(p)
}

// assemble resolves the labels into the relative jumps of classic BPF.
func assemble(p []bpfInsn) ([]unix.SockFilter, error) {
	at := map[string]int{}
	for i, in := range p {
		if in.label != "" {
			at[in.label] = i
		}
	}
	off := func(i int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		t, ok := at[label]
		if !ok || t <= i || t-i-1 > 255 {
			return 0, fmt.Errorf("bpf: bad jump from %d to %q", i, label)
		}
		return uint8(t - i - 1), nil
	}
	out := make([]unix.SockFilter, len(p))
	for i, in := range p {
		jt, err := off(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := off(i, in.jf)
		if err != nil {
			return nil, err
		}
		out[i] = unix.SockFilter{Code: in.code, Jt: jt, Jf: jf, K: in.k}
	}
	return out, nil
}

// installSeccomp sets no_new_privs (required to filter without CAP_SYS_ADMIN, and it keeps the
// program from gaining privileges through setuid files) and installs the filter on every thread
// of the helper (TSYNC), so whichever thread forks or execs the program passes it on.
func installSeccomp() error {
	filter, err := seccompFilter()
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("seccomp(SET_MODE_FILTER, TSYNC): %w", errno)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d could not be synchronised", r)
	}
	return nil
}
