package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/shared/logtext"
)

const statusSynopsis = `Usage: astrid-host status [--state DIR] [--json]

Shows the capsules of the astrid-host run that uses the state directory DIR: each capsule's state,
restarts, shim pid and last failure. 'run' keeps this in DIR/status.json while it runs.

Exit status: 0 when a running host was found, 1 when none is running with that state directory,
2 for usage errors.`

// statusFileName is the file in the state directory where run publishes its capsules' status.
const statusFileName = "status.json"

// statusFile is what run writes and status reads.
type statusFile struct {
	HostPid  int           `json:"host_pid"`
	Updated  time.Time     `json:"updated"`
	Capsules []host.Status `json:"capsules"`
}

// keepStatus writes the host's status to dir/status.json now and after every capsule event,
// until the returned function is called (which removes the file).
func keepStatus(h *host.Host, dir string, logger hclog.Logger) (stop func()) {
	path := filepath.Join(dir, statusFileName)
	write := func() {
		sf := statusFile{HostPid: os.Getpid(), Updated: time.Now().UTC(), Capsules: []host.Status{}}
		for _, inst := range h.Instances() {
			sf.Capsules = append(sf.Capsules, inst.Status())
		}
		data, err := json.MarshalIndent(sf, "", "  ")
		if err == nil {
			tmp := path + ".tmp"
			if err = os.WriteFile(tmp, append(data, '\n'), 0o644); err == nil {
				err = os.Rename(tmp, path)
			}
		}
		if err != nil {
			logger.Warn("cannot write the status file", "path", path, "error", err)
		}
	}
	events := h.Bus().Subscribe(host.TopicCapsulePrefix + "*")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer events.Close()
		write()
		for {
			if _, err := events.Recv(ctx, 1<<20); err != nil {
				return
			}
			write()
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		os.Remove(path)
	}
}

func statusCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusSynopsis, stderr)
	state := fs.String("state", "", "the state directory of the running host (default: as for run)")
	asJSON := fs.Bool("json", false, "print the status file as JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, fmt.Errorf("status takes no arguments"))
	}
	dir := *state
	if dir == "" {
		if dir, err = defaultStateDir(); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitUsage
		}
	}
	path := filepath.Join(dir, statusFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		fmt.Fprintf(stderr, "no astrid-host run is running with state directory %s (%s does not exist)\n", dir, path)
		return exitFailure
	}
	var sf statusFile
	if err == nil {
		err = json.Unmarshal(data, &sf)
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %s: %v\n", path, err)
		return exitFailure
	}
	if sf.HostPid <= 0 || syscall.Kill(sf.HostPid, 0) != nil {
		fmt.Fprintf(stderr, "no astrid-host run is running with state directory %s (the host that wrote %s, pid %d, is gone)\n", dir, path, sf.HostPid)
		return exitFailure
	}
	if *asJSON {
		stdout.Write(data)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CAPSULE\tSTATE\tRESTARTS\tPID\tLAST FAILURE")
	for _, c := range sf.Capsules {
		pid := "-"
		if c.Pid > 0 {
			pid = fmt.Sprint(c.Pid)
		}
		last := c.LastFailure
		if c.State == "failed" && c.Reason != "" {
			last = c.Reason
		}
		if last == "" {
			last = "-"
		}
		// The failure may quote a guest (its trap message) or a shim: escaped, on one line.
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", logtext.Escape(c.Capsule), logtext.Escape(c.State), c.Restarts, pid, logtext.Escape(last))
	}
	tw.Flush()
	return exitOK
}
