// Command astrid-host runs capsules: sandboxed WebAssembly programs, each in its own astrid-shim
// process.
//
//	astrid-host run   [flags] PATH...          load capsules and run until a signal
//	astrid-host call  [flags] TARGET EXPORT    run a capsule and call one export
//	astrid-host check PATH...                  validate capsule manifests
//	astrid-host status [--state DIR]           show the capsules of a running host
//	astrid-host doctor                         show which sandbox layers this machine supports
//	astrid-host install [flags] SRC            install a capsule into the store
//	astrid-host uninstall NAME                 remove an installed capsule
//	astrid-host list                           list the installed capsules
//	astrid-host approve ID DECISION            answer a capsule's approval request
//	astrid-host publish TOPIC JSON             publish a message on the running host's bus
//	astrid-host tail PATTERN...                follow the running host's bus
//	astrid-host load PATH                      load capsules into the running host
//	astrid-host unload NAME                    unload a capsule from the running host
//	astrid-host reload NAME                    reload a capsule in the running host
//
// Run `astrid-host COMMAND --help` for each command's flags. Flags may come before or after the
// positional arguments.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/astrid-go/astrid/sandbox"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // the capsule failed (call), or problems were found (check)
	exitUsage   = 2 // bad flags or arguments, or a manifest or load error
)

const usage = `astrid-host runs capsules: sandboxed WebAssembly programs, each in its own
astrid-shim process.

Usage:
  astrid-host run   [flags] PATH...          load capsules and run until SIGINT/SIGTERM
  astrid-host call  [flags] TARGET EXPORT    run a capsule (or a bare .wasm) and call one export
  astrid-host call --running NAME EXPORT [INPUT]  call an export of a capsule in the running host
  astrid-host check PATH...                  validate Capsule.toml files and print every problem
  astrid-host status [--state DIR] [--json]  show the capsules of the running host, live
  astrid-host publish [--state DIR] TOPIC JSON   publish a message on the running host's bus
  astrid-host tail [--state DIR] PATTERN...  follow the running host's bus until Ctrl-C
  astrid-host load [--state DIR] PATH        load capsules into the running host
  astrid-host unload [--state DIR] NAME      unload a capsule from the running host
  astrid-host doctor                         show which sandbox layers this machine supports
  astrid-host approve [--state DIR] ID DECISION  answer a capsule's approval request in the running host
  astrid-host reload [--state DIR] NAME      reload a changed capsule in the running host, without losing its queued messages
  astrid-host install [flags] SRC            install a capsule into the store (STATE/capsules)
  astrid-host uninstall NAME                 remove an installed capsule
  astrid-host list                           list the installed capsules
  astrid-host config NAME [KEY=VALUE...]     show or set a capsule's [env] values
  astrid-host connect [--state DIR]          talk to a capsule over the host's CLI socket (stdin/stdout)

Run 'astrid-host COMMAND --help' for a command's flags.
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg {
		// astrid-host re-executed by its own sandbox: confine this process and start the target.
		sandbox.HelperMain(os.Args[2:])
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCommand(rest, stdout, stderr)
	case "call":
		return callCommand(rest, stdin, stdout, stderr)
	case "check":
		return checkCommand(rest, stdout, stderr)
	case "status":
		return statusCommand(rest, stdout, stderr)
	case "doctor":
		return doctorCommand(rest, stdout, stderr)
	case "install":
		return installCommand(rest, stdin, stdout, stderr)
	case "uninstall":
		return uninstallCommand(rest, stdout, stderr)
	case "list":
		return listCommand(rest, stdout, stderr)
	case "config":
		return configCommand(rest, stdin, stdout, stderr)
	case "approve":
		return approveCommand(rest, stdout, stderr)
	case "connect":
		return connectCommand(rest, stdin, stdout, stderr)
	case "publish":
		return publishCommand(rest, stdout, stderr)
	case "tail":
		return tailCommand(rest, stdout, stderr)
	case "load":
		return loadCommand(rest, stdout, stderr)
	case "unload":
		return unloadCommand(rest, stdout, stderr)
	case "reload":
		return reloadCommand(rest, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "astrid-host: unknown command %q; the commands are run, call, check, status, doctor, install, uninstall, list, config, approve, connect, publish, tail, load, unload and reload\n\n%s", cmd, usage)
		return exitUsage
	}
}

// parseArgs parses flags that may appear before, between or after positional arguments, as the
// Extism CLI allows (`astrid-host call plugin.wasm count_vowels --input hello`). Everything after
// "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// newFlagSet makes a flag set that prints its usage to stderr and reports errors instead of
// exiting, so every command controls its exit code.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// usageError reports a usage problem and returns exitUsage; -h/--help returns exitOK.
func usageError(fs *flag.FlagSet, stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "astrid-host %s: %v\n", fs.Name(), err)
	}
	fmt.Fprintf(stderr, "Run 'astrid-host %s --help' for usage.\n", fs.Name())
	return exitUsage
}
