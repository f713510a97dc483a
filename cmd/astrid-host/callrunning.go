package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/shared/logtext"
)

// ownHostFlags are call's flags that configure the host call starts, which --running does not.
var ownHostFlags = []string{"config", "allow-host", "workspace", "shim", "sandbox", "log-level", "allow-private-network"}

// callRunning is `astrid-host call --running NAME EXPORT [INPUT]`: a call into a capsule of the
// running host, through its control socket. The output streams to stdout as it arrives.
func callRunning(fs *flag.FlagSet, state string, pos []string, input, inputFile string, timeout time.Duration,
	stdin io.Reader, stdout, stderr io.Writer) int {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range ownHostFlags {
		if set[name] {
			return usageError(fs, stderr, fmt.Errorf("--%s configures a host of call's own; with --running the capsule runs in its host as it was loaded", name))
		}
	}
	if len(pos) < 2 || len(pos) > 3 {
		return usageError(fs, stderr, fmt.Errorf("with --running, want NAME, EXPORT and optionally INPUT, got %d argument(s): %s", len(pos), strings.Join(pos, " ")))
	}
	inputs := 0
	for _, given := range []bool{len(pos) == 3, set["input"], set["input-file"]} {
		if given {
			inputs++
		}
	}
	if inputs > 1 {
		return usageError(fs, stderr, errors.New("give the input once: as INPUT, --input or --input-file"))
	}
	in := []byte(input)
	switch {
	case len(pos) == 3:
		in = []byte(pos[2])
	case set["input-file"]:
		var err error
		if in, err = readInput(inputFile, stdin); err != nil {
			fmt.Fprintf(stderr, "astrid-host call: %v\n", err)
			return exitUsage
		}
	}
	if timeout < 0 {
		return usageError(fs, stderr, fmt.Errorf("--timeout %s: must be positive", timeout))
	}
	p := host.CallParams{Capsule: pos[0], Export: pos[1], Input: in, TimeoutMs: timeout.Milliseconds()}
	if err := host.CheckCallParams(p); err != nil {
		return usageError(fs, stderr, err)
	}
	dir, ok := runningState(state, stderr)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var werr error
	err := control.CallStream(ctx, dir, host.ControlCall, p, func(raw json.RawMessage) error {
		if raw == nil {
			return nil
		}
		var f host.CallFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("a frame of the call's answer: %w", err)
		}
		if len(f.Output) > 0 && werr == nil {
			_, werr = stdout.Write(f.Output)
		}
		printBlock(stderr, "wasm backtrace", f.Backtrace)
		printBlock(stderr, "guest stderr", f.Stderr)
		return nil
	})
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "error: interrupted; the call was cancelled")
		return exitFailure
	case err != nil:
		var re *control.RemoteError
		if errors.As(err, &re) {
			// The guest's message (or the host's, which may quote it): one escaped line.
			fmt.Fprintf(stderr, "error: %s\n", logtext.Escape(re.Msg))
			return exitFailure
		}
		return controlFailed(stderr, err)
	case werr != nil:
		fmt.Fprintf(stderr, "error: write output: %v\n", werr)
		return exitFailure
	}
	return exitOK
}
