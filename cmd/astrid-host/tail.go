package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/shared/logtext"
)

const tailSynopsis = `Usage: astrid-host tail [--state DIR] PATTERN...

Follows the bus of the astrid-host run that uses the state directory DIR, through its control
socket (DIR/run/control.sock), until Ctrl-C (SIGINT or SIGTERM) or until that host stops: every
message whose topic a PATTERN matches is printed on stdout as a JSON line, as run --tail prints
it. A PATTERN is a topic whose segments may be "*" (one segment; a last "*" matches one or
more), e.g. 'ping.v1.*', or '*.*' for (nearly) everything; at most 16 patterns.

Each pattern has its own queue in the host (1024 messages, 8 MiB): when tail falls behind, the
oldest are dropped, never holding up a publisher, and tail says on stderr how many. A message
whose JSON line is over 1 MiB is named on stderr (topic, seq, size) instead of printed. At most 8
tails (and calls with --running) run at once; one more is refused.

Exit status: 0 on Ctrl-C or when the host stopped in order, 1 when no host is running with that
state directory, the host refused, or the connection broke; 2 for usage errors.`

func tailCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tail", tailSynopsis, stderr)
	state := stateFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if err := host.CheckTailPatterns(pos); err != nil {
		return usageError(fs, stderr, err)
	}
	dir, ok := runningState(*state, stderr)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	printer := &tailPrinter{out: stdout}
	err = control.CallStream(ctx, dir, host.ControlTail, host.TailParams{Patterns: pos}, func(raw json.RawMessage) error {
		if raw == nil {
			fmt.Fprintf(stderr, "astrid-host tail: following %s on the host of %s; Ctrl-C to stop\n", logtext.Escape(strings.Join(pos, " ")), dir)
			return nil
		}
		var f host.TailFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("a frame of the tail: %w", err)
		}
		switch {
		case f.Message != nil:
			printer.line(f.Message)
		case f.Lagged > 0:
			fmt.Fprintf(stderr, "astrid-host tail: fell behind on %s; %d messages were dropped\n", logtext.Escape(f.Pattern), f.Lagged)
		case f.TooLarge != nil:
			fmt.Fprintf(stderr, "astrid-host tail: message seq %d on %s not shown: its JSON is %d bytes, over the %d a tail shows\n",
				f.TooLarge.Seq, logtext.Escape(f.TooLarge.Topic), f.TooLarge.Bytes, host.MaxTailMessageBytes)
		}
		return nil
	})
	var re *control.RemoteError
	switch {
	case ctx.Err() != nil:
		return exitOK
	case errors.As(err, &re) && re.Msg == control.ErrStopping.Error():
		fmt.Fprintln(stderr, "astrid-host tail: the host is shutting down; the tail ends")
		return exitOK
	case err != nil:
		return controlFailed(stderr, err)
	}
	return exitOK
}
