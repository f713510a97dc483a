package main

import (
	"fmt"
	"io"
)

// SCAFFOLDING: the "store" helper replaces this file with the install, uninstall and list
// commands.

func installCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "astrid-host install: not built yet")
	return exitUsage
}

func uninstallCommand(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "astrid-host uninstall: not built yet")
	return exitUsage
}

func listCommand(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "astrid-host list: not built yet")
	return exitUsage
}
