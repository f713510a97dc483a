package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/logtext"
)

const checkSynopsis = `Usage: astrid-host check PATH...

Validates the Capsule.toml of each capsule: PATH is a capsule directory, a Capsule.toml, or a
directory of capsule directories. Prints every problem as FILE:LINE: KEY: MESSAGE, warnings
(unknown keys) included, and "ok" for each valid capsule.

Exit status: 0 when every capsule is valid, 1 when any has an error, 2 for usage errors.`

func checkCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", checkSynopsis, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) == 0 {
		return usageError(fs, stderr, fmt.Errorf("want at least one PATH"))
	}
	status := exitOK
	for _, p := range pos {
		dirs, skipped, err := host.DiscoverCapsules([]string{p})
		if err != nil {
			fmt.Fprintf(stdout, "error: %s\n", logtext.Escape(err.Error()))
			status = exitFailure
			continue
		}
		for _, s := range skipped {
			fmt.Fprintf(stdout, "warning: skipped %s\n", logtext.Escape(s))
		}
		for _, dir := range dirs {
			m, warnings, err := manifest.Load(dir)
			for _, w := range warnings {
				fmt.Fprintf(stdout, "warning: %s\n", logtext.Escape(w.String()))
			}
			if err != nil {
				var problems manifest.Errors
				if errors.As(err, &problems) {
					for _, p := range problems {
						fmt.Fprintf(stdout, "error: %s\n", logtext.Escape(p.String()))
					}
				} else {
					fmt.Fprintf(stdout, "error: %s\n", logtext.Escape(err.Error()))
				}
				status = exitFailure
				continue
			}
			fmt.Fprintf(stdout, "ok: %s %s (%s)\n", m.ID(), m.Package.Version, logtext.Escape(m.Path))
		}
	}
	return status
}
