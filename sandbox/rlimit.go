package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setRlimits sets the program's resource limits before it exists, so it can only lower them.
// Soft and hard limits are equal: a program may not raise its own. NOFILE goes through x/sys,
// which tells the Go runtime not to restore its start-up value in the children it forks.
func (h *helper) setRlimits() error {
	for _, l := range []struct {
		name     string
		resource int
		value    uint64
	}{
		{"NOFILE", unix.RLIMIT_NOFILE, h.spec.OpenFiles},
		{"CORE", unix.RLIMIT_CORE, 0},
		{"FSIZE", unix.RLIMIT_FSIZE, h.spec.FileSize},
	} {
		lim := unix.Rlimit{Cur: l.value, Max: l.value}
		// Never above the current hard limit, which only a privileged process could raise.
		var old unix.Rlimit
		if err := unix.Getrlimit(l.resource, &old); err == nil && lim.Max > old.Max {
			lim.Cur, lim.Max = old.Max, old.Max
		}
		if err := unix.Setrlimit(l.resource, &lim); err != nil {
			return fmt.Errorf("RLIMIT_%s=%d: %w", l.name, l.value, err)
		}
	}
	return nil
}
