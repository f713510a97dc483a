package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF runs a classic BPF seccomp program on one syscall, as the kernel would: it supports the
// instructions seccompFilter emits, and fails the test on anything else.
func runBPF(t *testing.T, prog []unix.SockFilter, arch uint32, nr int32, arg0 uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], arch)
	binary.LittleEndian.PutUint64(data[16:], arg0)
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLdWAbs:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case bpfJeqK, bpfJgeK, bpfJsetK:
			var taken bool
			switch in.Code {
			case bpfJeqK:
				taken = acc == in.K
			case bpfJgeK:
				taken = acc >= in.K
			default:
				taken = acc&in.K != 0
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRetK:
			return in.K
		default:
			t.Fatalf("instruction %d: unknown opcode %#x", pc, in.Code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func TestSeccompFilter(t *testing.T) {
	prog, err := seccompFilter()
	if err != nil {
		t.Skipf("no filter for this architecture: %v", err)
	}
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	enosys := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	allow, kill := uint32(unix.SECCOMP_RET_ALLOW), uint32(unix.SECCOMP_RET_KILL_PROCESS)
	for _, tt := range []struct {
		name string
		arch uint32
		nr   uintptr
		arg0 uint64
		want uint32
	}{
		{"read", seccompArch, unix.SYS_READ, 0, allow},
		{"openat", seccompArch, unix.SYS_OPENAT, 0, allow},
		{"ptrace", seccompArch, unix.SYS_PTRACE, 0, eperm},
		{"mount", seccompArch, unix.SYS_MOUNT, 0, eperm},
		{"unshare", seccompArch, unix.SYS_UNSHARE, unix.CLONE_NEWUSER, eperm},
		{"setns", seccompArch, unix.SYS_SETNS, 0, eperm},
		{"bpf", seccompArch, unix.SYS_BPF, 0, eperm},
		{"keyctl", seccompArch, unix.SYS_KEYCTL, 0, eperm},
		{"fsopen", seccompArch, unix.SYS_FSOPEN, 0, eperm},
		{"clone a thread", seccompArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND, allow},
		{"clone a process", seccompArch, unix.SYS_CLONE, uint64(unix.SIGCHLD), allow},
		{"clone vfork", seccompArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), allow},
		{"clone CLONE_NEWUSER", seccompArch, unix.SYS_CLONE, unix.CLONE_NEWUSER | uint64(unix.SIGCHLD), eperm},
		{"clone CLONE_NEWNET", seccompArch, unix.SYS_CLONE, unix.CLONE_NEWNET, eperm},
		{"clone CLONE_NEWCGROUP", seccompArch, unix.SYS_CLONE, unix.CLONE_NEWCGROUP, eperm},
		// The flags are an int to the kernel: bits above 32 are not flags and do not matter.
		{"clone high bits", seccompArch, unix.SYS_CLONE, 1<<40 | uint64(unix.SIGCHLD), allow},
		{"clone3", seccompArch, unix.SYS_CLONE3, 0, enosys},
		{"another architecture", unix.AUDIT_ARCH_I386, unix.SYS_READ, 0, kill},
	} {
		if got := runBPF(t, prog, tt.arch, int32(tt.nr), tt.arg0); got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, tt.want)
		}
	}
	if seccompX32Bit != 0 {
		if got := runBPF(t, prog, seccompArch, int32(seccompX32Bit|unix.SYS_READ), 0); got != eperm {
			t.Errorf("an x32 read: %#x, want EPERM", got)
		}
	}
	for _, nr := range append(deniedSyscalls, archDenied...) {
		if got := runBPF(t, prog, seccompArch, int32(nr), 0); got != eperm {
			t.Errorf("denied syscall %d: %#x, want EPERM", nr, got)
		}
	}
}

func TestAssembleRejectsBadJumps(t *testing.T) {
	for _, p := range [][]bpfInsn{
		{{code: bpfJeqK, jt: "nowhere"}, {code: bpfRetK}},
		{{code: bpfRetK, label: "back"}, {code: bpfJeqK, jt: "back"}},
	} {
		if _, err := assemble(p); err == nil {
			t.Errorf("assemble(%v) accepted a bad jump", p)
		}
	}
}
