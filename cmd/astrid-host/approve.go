package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
)

const approveSynopsis = `Usage: astrid-host approve [--state DIR] REQUEST_ID approve|deny|approve_session|approve_always

Answers a capsule's approval request (astrid_request_approval) waiting in the astrid-host run that
uses the state directory DIR, through its control socket (DIR/run/control.sock). 'run' logs each
request with its REQUEST_ID, the capsule, the action, the resource and the risk level; the request
waits 60 s for an answer, then is denied.

  approve           approves this request only
  deny              denies it
  approve_session   approves it, and later requests of the same capsule whose resource is the
                    action or starts with the action and a space, until the host stops
  approve_always    the same, kept in DIR/kv.db: it survives restarts

Exit status: 0 when the answer was delivered, 1 when no host is running with that state directory
or no request waits under REQUEST_ID, 2 for usage errors.`

func approveCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("approve", approveSynopsis, stderr)
	state := stateFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	decisions := host.ApprovalDecisions()
	switch {
	case len(pos) != 2:
		return usageError(fs, stderr, fmt.Errorf("want REQUEST_ID and a decision, got %d argument(s)", len(pos)))
	case !slices.Contains(decisions, pos[1]):
		return usageError(fs, stderr, fmt.Errorf("decision %q: want one of %s", pos[1], strings.Join(decisions, ", ")))
	}
	dir, ok := runningState(*state, stderr)
	if !ok {
		return exitUsage
	}
	err = control.Call(context.Background(), dir, host.ControlApprove, host.ApproveParams{RequestID: pos[0], Decision: pos[1]}, nil)
	if err != nil {
		return controlFailed(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: %s\n", pos[0], pos[1])
	return exitOK
}

// serveControl serves the host's control socket until the returned function is called. A socket
// another live host already serves (a second run on the same state directory) is left to it,
// with a warning: approve then reaches that host.
func serveControl(h *host.Host, stateDir string, logger hclog.Logger) (stop func()) {
	srv, err := control.Listen(stateDir, h.ControlHandlers(), logger.Named("control"))
	if err != nil {
		logger.Warn("no control socket: astrid-host status, tail, publish, call --running, load, unload and approve cannot reach this host", "error", err)
		return func() {}
	}
	logger.Debug("control socket", "path", srv.Path())
	return func() { srv.Close() }
}
