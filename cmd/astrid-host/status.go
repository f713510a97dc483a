package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/shared/logtext"
)

const statusSynopsis = `Usage: astrid-host status [--state DIR] [--json]

Shows the capsules of the astrid-host run that uses the state directory DIR, live, from its
control socket (DIR/run/control.sock): each capsule's name, version, state, restarts, shim pid,
where it comes from (store: its module is verified against meta.json's BLAKE3 hash at each load;
development: a directory, unverified) and last failure. --json prints
{"host_pid": N, "capsules": [{"capsule", "instance", "state", "reason", "restarts",
"last_failure", "pid", "version", "dir", "source"}, ...]} instead (reasons and failures cut to
1 KiB each).

Exit status: 0 when a running host answered, 1 when none is running with that state directory,
2 for usage errors.`

func statusCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusSynopsis, stderr)
	state := stateFlag(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, fmt.Errorf("status takes no arguments"))
	}
	dir, ok := runningState(*state, stderr)
	if !ok {
		return exitUsage
	}
	var st host.HostStatus
	if err := control.Call(context.Background(), dir, host.ControlStatus, nil, &st); err != nil {
		return controlFailed(stderr, err)
	}
	if *asJSON {
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitFailure
		}
		// Reasons may quote a guest: nothing in them may act on a terminal.
		fmt.Fprintf(stdout, "%s\n", logtext.EscapeJSON(data))
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CAPSULE\tVERSION\tSTATE\tRESTARTS\tPID\tSOURCE\tLAST FAILURE")
	for _, c := range st.Capsules {
		pid := "-"
		if c.Pid > 0 {
			pid = fmt.Sprint(c.Pid)
		}
		last := c.LastFailure
		if c.State == "failed" && c.Reason != "" {
			last = c.Reason
		}
		if last == "" {
			last = "-"
		}
		// The failure may quote a guest (its trap message) or a shim: escaped, on one line.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", logtext.Escape(c.Capsule), logtext.Escape(c.Version), logtext.Escape(c.State),
			c.Restarts, pid, logtext.Escape(c.Source), logtext.Escape(last))
	}
	tw.Flush()
	return exitOK
}
