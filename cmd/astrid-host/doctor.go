package main

import (
	"fmt"
	"io"
	"os"

	"github.com/astrid-go/astrid/sandbox"
)

const doctorSynopsis = `Usage: astrid-host doctor

Probes which sandbox layers this machine supports (namespaces, landlock, seccomp, rlimits,
cgroups) and says, for each missing one, why it is missing and what it would protect against.

Exit status: 0 when the default policy (--sandbox=required) can run here, 1 when a layer it needs
is missing (run with --sandbox=best-effort, or fix what the report names), 2 for usage errors.`

func doctorCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("doctor", doctorSynopsis, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, fmt.Errorf("unexpected argument %q", pos[0]))
	}
	helper, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "astrid-host doctor: %v\n", err)
		return exitFailure
	}
	support := sandbox.Probe(helper)
	fmt.Fprint(stdout, support.Report())
	if err := support.CheckPolicy(sandbox.Required); err != nil {
		fmt.Fprintf(stdout, "\n--sandbox=required (the default) cannot run here: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "\n--sandbox=required (the default) can run here.")
	return exitOK
}
