package main

import (
	"context"
	"fmt"
	"io"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
)

const publishSynopsis = `Usage: astrid-host publish [--state DIR] TOPIC JSON

Publishes one message on the bus of the astrid-host run that uses the state directory DIR, through
its control socket (DIR/run/control.sock), as run --publish does: from the host (source_id the nil
UUID, as the host's own events) for the principal "default", the JSON wrapped as a capsule's
payload would be ({"n":1} arrives as {"type":"custom","data":{"n":1}}). It reaches every
subscription whose pattern matches TOPIC, as a capsule's publish does; no ACL applies (the
operator is not a capsule).

TOPIC: dot-separated segments, none empty, at most 256 bytes, UTF-8. JSON: one JSON value, at most
512 KiB.

Exit status: 0 when published (it prints the message's seq), 1 when no host is running with that
state directory or it refused the message, 2 for usage errors (a bad topic or JSON).

Example:
  astrid-host publish ping.v1.request '{"n":1}'`

func publishCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("publish", publishSynopsis, stderr)
	state := stateFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 2 {
		return usageError(fs, stderr, fmt.Errorf("want TOPIC and JSON, got %d argument(s)", len(pos)))
	}
	if err := host.CheckOperatorPublish(pos[0], []byte(pos[1])); err != nil {
		return usageError(fs, stderr, err)
	}
	dir, ok := runningState(*state, stderr)
	if !ok {
		return exitUsage
	}
	var res host.PublishResult
	if err := control.Call(context.Background(), dir, host.ControlPublish, host.PublishParams{Topic: pos[0], Payload: pos[1]}, &res); err != nil {
		return controlFailed(stderr, err)
	}
	fmt.Fprintf(stdout, "published to %s (seq %d)\n", res.Topic, res.Seq)
	return exitOK
}
