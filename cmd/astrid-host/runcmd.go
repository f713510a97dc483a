package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
)

const runSynopsis = `Usage: astrid-host run [flags] PATH...

Loads every capsule under PATH (a capsule directory, or a directory of capsule directories),
each in its own astrid-shim process, logs each one's state, and runs until SIGINT or SIGTERM.
Then it unloads the capsules, newest first, and exits 0 with no process left behind; a second
signal exits at once (the shims die with the host).

A capsule whose manifest is invalid is skipped with its problems logged; the command fails
(exit 2) only when no capsule could be loaded.`

// shutdownTimeout bounds the orderly unload at the end of run.
const shutdownTimeout = 10 * time.Second

func runCommand(args []string, stderr io.Writer) int {
	fs := newFlagSet("run", runSynopsis, stderr)
	var hf hostFlags
	hf.register(fs, "info")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) == 0 {
		return usageError(fs, stderr, fmt.Errorf("want at least one capsule PATH"))
	}
	dirs, err := host.DiscoverCapsules(pos)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	h, logger, err := hf.newHost(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	seen := map[string]string{}
	ready := 0
	for _, dir := range dirs {
		m, warnings, err := manifest.Load(dir)
		for _, w := range warnings {
			logger.Warn("manifest warning", "problem", w.String())
		}
		if err != nil {
			logger.Error("capsule skipped: invalid manifest", "dir", dir, "problems", err.Error())
			continue
		}
		if first, dup := seen[m.ID()]; dup {
			logger.Warn("capsule skipped: another capsule with this id is already loaded", "id", m.ID(), "dir", dir, "loaded_from", first)
			continue
		}
		seen[m.ID()] = dir
		if _, _, err := h.Load(ctx, m, host.LoadOptions{}); err == nil {
			ready++
		}
		if ctx.Err() != nil {
			break
		}
	}
	if ready == 0 {
		logger.Error("no capsule could be loaded")
		h.Shutdown(context.Background())
		return exitUsage
	}
	logger.Info("running; send SIGINT or SIGTERM to stop", "capsules", ready)
	<-ctx.Done()
	stop()

	// A second signal skips the orderly unload; Pdeathsig takes the shims down with the host.
	force := make(chan os.Signal, 1)
	signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-force
		logger.Error("second signal: exiting at once")
		os.Exit(exitFailure)
	}()
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	h.Shutdown(sctx)
	logger.Info("stopped")
	return exitOK
}
