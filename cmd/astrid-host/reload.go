package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
)

const reloadSynopsis = `Usage: astrid-host reload [--state DIR] [--timeout D] NAME

Reloads the capsule NAME (its package.name) in the astrid-host run that uses the state directory
DIR, through its control socket (DIR/run/control.sock), as 'run --watch' does when the capsule's
files change: its Capsule.toml is read again, its module compiled (or taken from the module
cache) and a new instance started; the new instance takes over the subscriptions of the running
one, with what is queued on them, and once it is ready (a run-loop capsule signals it) the old
instance finishes what it had received and is stopped. An installed capsule's module is verified
against its meta.json again, as at boot: a module that does not match is refused. If anything
fails, the running instance goes on serving and the error says why.

Exit status: 0 when the capsule was reloaded, 1 when it was not (no host is running with that
state directory, no capsule NAME is loaded, or the new instance failed), 2 for usage errors.`

// reloadTimeout is how long `reload` waits for the host's answer by default: a reload compiles
// the module, which can take a while for a large one.
const reloadTimeout = 5 * time.Minute

func reloadCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reload", reloadSynopsis, stderr)
	state := fs.String("state", "", "the state directory of the running host (default: as for run)")
	timeout := fs.Duration("timeout", reloadTimeout, "how long to wait for the host's answer (the reload goes on in the host if it is longer)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	switch {
	case len(pos) != 1:
		return usageError(fs, stderr, fmt.Errorf("want the NAME of one capsule, got %d argument(s)", len(pos)))
	case *timeout <= 0:
		return usageError(fs, stderr, fmt.Errorf("--timeout %s: want a positive duration such as 2m", *timeout))
	}
	dir := *state
	if dir == "" {
		if dir, err = defaultStateDir(); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitUsage
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var reply host.ReloadReply
	err = control.Call(ctx, dir, host.ControlReload, host.ReloadParams{Name: pos[0]}, &reply)
	var noHost *control.NoHostError
	switch {
	case errors.As(err, &noHost):
		fmt.Fprintln(stderr, noHost.Error())
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	how := "cached artefact"
	if reply.Compiled {
		how = "compiled"
	}
	fmt.Fprintf(stdout, "%s: reloaded (instance %s, replacing %s; %s, %d ms; reloads: %d)\n",
		reply.Capsule, reply.Instance, reply.Previous, how, reply.TookMs, reply.Reloads)
	return exitOK
}
