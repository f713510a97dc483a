package main

import (
	"fmt"
	"io"

	"github.com/astrid-go/astrid/host/manifest"
)

// SCAFFOLDING: the "env" helper replaces this file with the config command and the [env]
// prompts of install.

func configCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "astrid-host config: not built yet")
	return exitUsage
}

// promptEnv is called by install once a capsule is installed (its hook succeeded): on a
// terminal it asks the operator for each [env] value the capsule still misses and saves the
// answers where the host reads them (STATE/config/env/NAME.env.json); without a terminal it
// does nothing (the host publishes astrid.v1.onboarding.required at load instead).
func promptEnv(stdin io.Reader, stdout, stderr io.Writer, stateDir string, m *manifest.Manifest) error {
	return nil
}
