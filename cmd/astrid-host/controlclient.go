package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/shared/logtext"
)

// The commands that talk to a running host (approve, publish, tail, call --running, status,
// load, unload) reach it through its control socket, STATE/run/control.sock, found from --state
// as run finds its state directory.

// stateFlag registers --state for a command that talks to the running host.
func stateFlag(fs *flag.FlagSet) *string {
	return fs.String("state", "", "the state directory of the running host (default: as for run)")
}

// runningState is the state directory --state names, or run's default; when there is none it
// says why on stderr and returns false.
func runningState(state string, stderr io.Writer) (string, bool) {
	if state != "" {
		return state, true
	}
	dir, err := defaultStateDir()
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return "", false
	}
	return dir, true
}

// controlFailed reports a failed control call on stderr and returns exitFailure: that no host
// runs with the state directory, the host's error, or why the host could not be reached. The
// host's text may quote a guest or a manifest: it is escaped, one problem a line.
func controlFailed(stderr io.Writer, err error) int {
	var noHost *control.NoHostError
	if errors.As(err, &noHost) {
		fmt.Fprintln(stderr, noHost.Error())
		return exitFailure
	}
	fmt.Fprintf(stderr, "error: %s\n", logtext.EscapeBlock(err.Error()))
	return exitFailure
}
