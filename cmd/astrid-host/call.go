package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/logtext"
)

const callSynopsis = `Usage: astrid-host call [flags] TARGET EXPORT
       astrid-host call --running [--state DIR] [--timeout D] [--input TEXT | --input-file F] NAME EXPORT [INPUT]

Runs TARGET (a capsule directory, or a bare .wasm file with a default manifest that grants
nothing) in a full host, with its own shim and the same checks as 'run', and calls EXPORT once.
The output bytes go to stdout unchanged; diagnostics go to stderr.

With --running, calls EXPORT of the capsule NAME loaded in the astrid-host run that uses the
state directory DIR instead, through its control socket (DIR/run/control.sock): the live instance,
with its state, for the principal "default". The input (INPUT, --input or --input-file) is at
most 512 KiB; Ctrl-C cancels the call. The flags that configure a host of its own (--config,
--allow-host, --workspace, --shim, --sandbox, --log-level, --allow-private-network) do not apply.

Exit status: 0 on success; 1 when the guest failed ("error: " and the guest's message or the
trap on stderr), or, with --running, when no host runs with DIR or it has no such capsule or
export; 2 for usage, manifest or load errors.

Examples:
  astrid-host call examples/hello greet --input world
  astrid-host call --running hello greet world`

func callCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("call", callSynopsis, stderr)
	var hf hostFlags
	hf.register(fs, "warn")
	config := keyValues{}
	fs.Var(config, "config", "`KEY=VALUE` the guest reads with config_get; repeatable; overrides the capsule's [env] defaults")
	input := fs.String("input", "", "input `TEXT` of the call")
	inputFile := fs.String("input-file", "", "read the input from `FILE` ('-' for stdin)")
	var allowHosts stringList
	fs.Var(&allowHosts, "allow-host", "`HOST` a bare .wasm may reach with HTTP (\"*\" for any; a capsule lists its hosts in [capabilities] net); repeatable")
	timeout := fs.Duration("timeout", 0, "time limit of the call, and of the capsule's start function and _initialize, e.g. 2s or 500ms (default: the capsule's [limits] call_timeout)")
	running := fs.Bool("running", false, "call `NAME`'s EXPORT in the running host of --state (its control socket) instead of loading TARGET")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if *running {
		return callRunning(fs, hf.state, pos, *input, *inputFile, *timeout, stdin, stdout, stderr)
	}
	if len(pos) != 2 {
		return usageError(fs, stderr, fmt.Errorf("want TARGET and EXPORT, got %d argument(s): %s", len(pos), strings.Join(pos, " ")))
	}
	target, export := pos[0], pos[1]
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["input"] && set["input-file"] {
		return usageError(fs, stderr, errors.New("--input and --input-file cannot both be given"))
	}
	if *timeout < 0 {
		return usageError(fs, stderr, fmt.Errorf("--timeout %s: must be positive", *timeout))
	}
	in := []byte(*input)
	if set["input-file"] {
		if in, err = readInput(*inputFile, stdin); err != nil {
			fmt.Fprintf(stderr, "astrid-host call: %v\n", err)
			return exitUsage
		}
	}

	m, err := loadTarget(target, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", logtext.EscapeBlock(err.Error())) // one problem a line
		return exitUsage
	}
	if len(allowHosts) > 0 && m.Path != "" {
		return usageError(fs, stderr, fmt.Errorf("--allow-host applies to a bare .wasm; the capsule %s lists the hosts it may reach in [capabilities] net", target))
	}
	hf.spares = -1 // one capsule, then exit
	h, logger, err := hf.newHost(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer h.Shutdown(context.Background())

	inst, _, err := h.Load(ctx, m, host.LoadOptions{Config: config, AllowHosts: allowHosts, CallTimeout: *timeout})
	if err != nil {
		// It may quote the guest (a failed _initialize) or the shim.
		fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
		return exitUsage
	}
	out, err := inst.Call(ctx, export, in, *timeout)
	if err != nil {
		// The message is the guest's (or, for a CallError, may quote the shim's): one escaped line.
		fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(err.Error()))
		var ge *host.GuestError
		if errors.As(err, &ge) {
			printBlock(stderr, "wasm backtrace", ge.Backtrace)
			if !logger.IsWarn() {
				// Otherwise the host's log has shown it already, under its warning of the failure.
				printBlock(stderr, "guest stderr", ge.Stderr)
			}
		}
		return exitFailure
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "error: write output: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// printBlock prints a block of lines under a title, indented, each line escaped; nothing when the
// block is empty.
func printBlock(w io.Writer, title, block string) {
	if block == "" {
		return
	}
	fmt.Fprintf(w, "%s:\n  %s\n", title, strings.ReplaceAll(logtext.EscapeBlock(block), "\n", "\n  "))
}

// loadTarget reads the manifest of a capsule directory, or builds the default one for a .wasm.
func loadTarget(target string, stderr io.Writer) (*manifest.Manifest, error) {
	fi, err := os.Stat(target)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", target, err)
	}
	if !fi.IsDir() {
		if !strings.HasSuffix(target, ".wasm") {
			return nil, fmt.Errorf("target %s is neither a capsule directory nor a .wasm file", target)
		}
		return manifest.ForWasm(target)
	}
	m, warnings, err := manifest.Load(target)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", logtext.Escape(w.String()))
	}
	return m, err
}

func readInput(path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--input-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, host.MaxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--input-file %s: %w", path, err)
	}
	if len(data) > host.MaxInputBytes {
		return nil, fmt.Errorf("--input-file %s is larger than %d bytes (10 MiB), the largest input a call takes", path, host.MaxInputBytes)
	}
	return data, nil
}
