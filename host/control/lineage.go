package control

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Who the operator is: the socket's mode and the peer's user id keep other users out, but the
// processes the host starts run as its user too: the capsules' shims and what capsules spawn.
// The sandbox hides the state directory (and so this socket) from them; where it cannot (no
// mount namespace, --sandbox=off) a guest that escaped into its shim could otherwise reach the
// socket and act as the operator: publish past its ACLs, call or unload other capsules, load
// code. So the server also refuses every process that descends from the host's own. Orphans
// stay in the lineage: a sandboxed shim's helper is a child subreaper, so what a shim leaves
// behind is adopted by the helper, which descends from the host.

// maxLineage bounds the walk up a peer's ancestry; a lineage deeper than this is refused.
const maxLineage = 4096

// descendsFrom reports whether process pid descends from process ancestor: whether ancestor is
// its parent, its parent's parent, and so on up to init. It reads /proc/PID/stat; a process
// that cannot be read (it has exited) is an error.
func descendsFrom(pid, ancestor int) (bool, error) {
	for range maxLineage {
		ppid, err := parentOf(pid)
		if err != nil {
			return false, err
		}
		switch ppid {
		case ancestor:
			return true, nil
		case 0:
			return false, nil
		}
		pid = ppid
	}
	return false, fmt.Errorf("the lineage of process %d is more than %d processes deep", pid, maxLineage)
}

// parentOf is the parent pid of process pid, from /proc/PID/stat ("PID (COMM) STATE PPID ...",
// where COMM may hold spaces and parentheses).
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	k := bytes.LastIndexByte(b, ')')
	if k < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[k+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: no parent pid", pid)
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: parent pid %q: %w", pid, f[1], err)
	}
	return ppid, nil
}
