package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/signal"
	"syscall"

	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/syssock"
	"github.com/astrid-go/astrid/shared/logtext"
)

const connectSynopsis = `Usage: astrid-host connect [--state DIR]

Connects to the CLI socket of the astrid-host run that uses the state directory DIR
(DIR/run/system.sock), authenticates with its session token (DIR/run/system.token), and relays:
each line of stdin is sent as one frame to the capsule that accepted the connection (one that
declares [capabilities] net_bind, such as examples/bridge), and each frame it sends back is
printed as one line (escaped: a capsule cannot drive the terminal). At the end of stdin the
connection is half-closed and connect prints what still comes until the capsule closes it.

Exit status: 0 when the capsule closed the connection, 1 when the connection failed or was
refused, 2 for usage errors.`

// maxConnectLine bounds a stdin line connect sends: one frame, 10 MiB.
const maxConnectLine = syssock.MaxFrameBytes

func connectCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("connect", connectSynopsis, stderr)
	state := fs.String("state", "", "the state directory of the running host (default: as for run)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, fmt.Errorf("connect takes no arguments"))
	}
	dir := *state
	if dir == "" {
		if dir, err = defaultStateDir(); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := syssock.Dial(ctx, dir, manifest.RuntimeVersion)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	defer conn.Close()
	context.AfterFunc(ctx, func() { conn.Close() })
	sendErr := make(chan error, 1)
	go func() { sendErr <- sendLines(conn, stdin) }()
	for {
		b, err := syssock.ReadFrame(conn, syssock.MaxFrameBytes)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return exitOK
			}
			if ctx.Err() != nil {
				return exitFailure
			}
			fmt.Fprintf(stderr, "error: reading from the host: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(stdout, logtext.Escape(string(b)))
		select {
		case err := <-sendErr:
			if err != nil {
				fmt.Fprintf(stderr, "error: %v\n", err)
				return exitFailure
			}
		default:
		}
	}
}

// sendLines sends each line of r as one frame, then half-closes conn.
func sendLines(conn *net.UnixConn, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxConnectLine)
	for sc.Scan() {
		if err := syssock.WriteFrame(conn, sc.Bytes()); err != nil {
			return fmt.Errorf("sending a line: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w (a line is at most %d bytes)", err, maxConnectLine)
	}
	return conn.CloseWrite()
}
