// The process layer, which every process gets, under every policy: each process leads its own
// process group, so the host can end it together with everything it started, and receives SIGKILL
// when the host dies, so nothing outlives the host.

package sandbox

import (
	"errors"
	"fmt"
	"syscall"
)

// ProcessAttr returns the process-layer attributes for a child: its own process group and
// SIGKILL on the parent's death.
//
// The parent-death signal follows the OS thread that forked the child (golang/go#27505), so
// never start a child from a goroutine that has called runtime.LockOSThread.
func ProcessAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillGroup sends SIGKILL to the process group led by pid (a child started with ProcessAttr).
// A group that is already gone is not an error.
func KillGroup(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("kill process group: invalid pid %d", pid)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pid, err)
	}
	return nil
}
