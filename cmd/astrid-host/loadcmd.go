package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/shared/logtext"
)

const loadSynopsis = `Usage: astrid-host load [--state DIR] PATH

Loads the capsules under PATH into the astrid-host run that uses the state directory DIR, through
its control socket (DIR/run/control.sock), as run PATH would have at its start: PATH is a capsule
directory or a directory of capsule directories; they are development capsules (a capsule in the
store, DIR/capsules/NAME, is verified against its meta.json all the same), loaded in dependency
order with their run loops started. A capsule whose name is loaded already is refused: unload it
first. It prints what became of each capsule. Ctrl-C cancels the loads under way.

Exit status: 0 when every capsule found loaded, 1 when one did not (or none was found), or no
host is running with that state directory; 2 for usage errors.`

const unloadSynopsis = `Usage: astrid-host unload [--state DIR] NAME

Unloads the capsule NAME from the astrid-host run that uses the state directory DIR, through its
control socket (DIR/run/control.sock): its shim stops as at shutdown, its subscriptions and
interceptors end, a restart pending for it is dropped, and status no longer lists it. A capsule
that is still loading is refused. Capsules that import from it keep running.

Exit status: 0 when unloaded, 1 when no such capsule is loaded or no host is running with that
state directory, 2 for usage errors.`

// loadWait bounds how long load waits for the host's answer: compiling a large module and each
// capsule's readiness are bounded by the host, this only keeps a wedged host from holding the
// command forever.
const loadWait = 30 * time.Minute

func loadCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load", loadSynopsis, stderr)
	state := stateFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, fmt.Errorf("want one PATH, got %d argument(s)", len(pos)))
	}
	// The host resolves nothing against its own working directory: it gets an absolute path.
	path, err := filepath.Abs(pos[0])
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		return usageError(fs, stderr, fmt.Errorf("PATH %s: %v", pos[0], err))
	}
	dir, ok := runningState(*state, stderr)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, loadWait)
	defer cancel()
	var rep host.LoadReport
	if err := control.Call(ctx, dir, host.ControlLoad, host.LoadParams{Dir: path}, &rep); err != nil {
		return controlFailed(stderr, err)
	}
	code := exitOK
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "skipped: %s\n", logtext.Escape(s))
	}
	if len(rep.Capsules) == 0 {
		fmt.Fprintf(stderr, "error: no capsule under %s (a capsule directory holds a Capsule.toml)\n", path)
		code = exitFailure
	}
	for _, c := range rep.Capsules {
		if c.Error != "" {
			fmt.Fprintf(stderr, "error: %s (%s): %s\n", logtext.Escape(c.Capsule), c.Dir, logtext.Escape(c.Error))
			code = exitFailure
			continue
		}
		fmt.Fprintf(stdout, "loaded %s from %s: %s\n", logtext.Escape(c.Capsule), c.Dir, logtext.Escape(c.State))
	}
	return code
}

func unloadCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("unload", unloadSynopsis, stderr)
	state := stateFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, fmt.Errorf("want one capsule NAME, got %d argument(s)", len(pos)))
	}
	dir, ok := runningState(*state, stderr)
	if !ok {
		return exitUsage
	}
	if err := control.Call(context.Background(), dir, host.ControlUnload, host.UnloadParams{Capsule: pos[0]}, nil); err != nil {
		return controlFailed(stderr, err)
	}
	fmt.Fprintf(stdout, "unloaded %s\n", logtext.Escape(pos[0]))
	return exitOK
}
