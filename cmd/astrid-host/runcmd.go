package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/host/metrics"
	"github.com/astrid-go/astrid/host/store"
)

const runSynopsis = `Usage: astrid-host run [flags] [PATH...]

Loads capsules, each in its own astrid-shim process and several at once, logs each one's state,
and runs until SIGINT or SIGTERM. Then it unloads the capsules, newest first, and exits 0 with no
process left behind; a second signal exits at once (the shims die with the host).

Which capsules:
  - with no PATH, the installed ones: the store (STATE/capsules, see 'astrid-host install'),
    then the workspace's .astrid/capsules (laid out like the store); each module is verified
    against its meta.json and refused if it does not match. The first capsule of a name wins;
    a later one is skipped with a warning naming both places.
  - with PATHs, the capsules under each PATH (a capsule directory, or a directory of capsule
    directories): development capsules, loaded without a hash check.

In what order: by [imports] and [exports]. A capsule that imports an interface starts once the
capsules exporting it have loaded and are ready; capsules that do not depend on each other load
at the same time. Uplink capsules ([capabilities] uplink = true) load first, and the others wait
for them to be ready. A dependency cycle is logged, naming the capsules in it, and the capsules
then load in the order found; an import nothing provides is logged and its capsule loads anyway.

A capsule that exports run is a run-loop capsule: run is started in the background once it is
loaded, with no time limit, and runs until the host stops; it signals ready when it has
subscribed (each is given 5 s).

A capsule whose manifest is invalid is skipped with its problems logged; the command fails
(exit 2) only when no capsule could be loaded.

--tail PATTERN prints every bus message whose topic PATTERN matches as a JSON line on stdout,
the host's own events (astrid.v1.capsule.*, astrid.v1.capsules_loaded) included; --tail '*.*'
shows (nearly) everything. Each pattern's messages print in the order they were published; the
lines of two patterns may interleave in another order (one subscription each). --publish TOPIC=JSON publishes a message once every capsule is loaded,
for smoke tests.

--metrics HOST:PORT serves Prometheus metrics at http://HOST:PORT/metrics while the host runs
(and /healthz); docs/metrics.md lists them. Bind it to a loopback or private address: the
endpoint has no authentication.

--watch reloads a capsule whose Capsule.toml, module or meta.json changes (in place or replaced
by a rename, as editors and cp do), 500 ms after the last change: the new instance takes over the
running one's subscriptions and queued messages; a change that fails to load (an invalid manifest,
a module that does not compile or, for an installed capsule, does not match its meta.json) is
logged and the running instance goes on. 'astrid-host reload NAME' does the same on demand.

--bus nats://HOST:4222 shares the bus with the capsules of other hosts on that NATS server;
--bus-listen [USER:PASSWORD@]HOST:PORT runs the NATS server in this host for others to join. Each
host checks its own capsules' ACLs; guest messages cross, the host's own events and interceptors
stay on their host (README: "Two machines").

While it runs, the commands publish, tail, call --running, status, load, unload, reload and approve (with
the same --state) reach it through its control socket STATE/run/control.sock: 'astrid-host status'
shows each capsule's state, restarts and last failure, 'astrid-host approve' answers the capsules'
approval requests, which run logs with their REQUEST_ID.

Examples:
  astrid-host run
  astrid-host run --tail 'ping.v1.*' --publish 'ping.v1.request={"n":1}' examples/
  astrid-host run --watch examples/pong`

// shutdownTimeout bounds the orderly unload at the end of run.
const shutdownTimeout = 10 * time.Second

func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", runSynopsis, stderr)
	var hf hostFlags
	hf.register(fs, "info")
	var tails, publishes stringList
	fs.Var(&tails, "tail", "print bus messages whose topic `PATTERN` matches as JSON lines on stdout; repeatable")
	fs.Var(&publishes, "publish", "publish `TOPIC=JSON` once the capsules are loaded; repeatable")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on `HOST:PORT` at /metrics (port 0 picks a free one; the log says which); see docs/metrics.md")
	watch := fs.Bool("watch", false, "reload a capsule when its Capsule.toml, module or meta.json changes (as 'astrid-host reload' does)")
	// The bus across hosts (busflags.go).
	var bf busFlags
	bf.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if err := bf.check(); err != nil {
		return usageError(fs, stderr, err)
	}
	type publication struct{ topic, payload string }
	var pubs []publication
	for _, p := range publishes {
		topic, payload, ok := strings.Cut(p, "=")
		if !ok {
			return usageError(fs, stderr, fmt.Errorf("--publish %q: want TOPIC=JSON", p))
		}
		if err := host.CheckOperatorPublish(topic, []byte(payload)); err != nil {
			return usageError(fs, stderr, fmt.Errorf("--publish %q: %v", p, err))
		}
		pubs = append(pubs, publication{topic, payload})
	}
	for _, t := range tails {
		if err := host.CheckOperatorTopic(t); err != nil {
			return usageError(fs, stderr, fmt.Errorf("--tail %q: the pattern %v", t, err))
		}
	}
	if *metricsAddr != "" {
		if err := metrics.CheckAddr(*metricsAddr); err != nil {
			return usageError(fs, stderr, fmt.Errorf("--metrics %w", err))
		}
	}
	var found []host.Found
	var notes []string
	if len(pos) > 0 {
		if found, notes, err = host.DiscoverPaths(pos); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitUsage
		}
	}
	h, logger, stateDir, err := hf.newHostIn(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	for _, s := range notes {
		logger.Warn("capsule path skipped", "reason", s)
	}
	stopBus, err := bf.join(h, logger)
	defer stopBus() // after the host's Shutdown, which leaves the bus
	if err != nil {
		h.Shutdown(context.Background())
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	if len(pos) == 0 {
		found, notes, err = host.DiscoverInstalled(stateDir, h.Workspace())
		if err == nil && len(found) == 0 {
			err = fmt.Errorf("no capsule to run: %s and %s hold none; install one with 'astrid-host install DIR', or give a capsule PATH",
				store.Dir(stateDir), filepath.Join(h.Workspace(), host.WorkspaceCapsulesDir))
		}
		if err != nil {
			h.Shutdown(context.Background())
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitUsage
		}
		for _, s := range notes {
			logger.Warn("capsule store", "note", s)
		}
	}
	stopMetrics, err := serveMetrics(h, *metricsAddr, logger)
	if err != nil {
		h.Shutdown(context.Background())
		fmt.Fprintf(stderr, "error: --metrics: %v\n", err)
		return exitUsage
	}
	defer stopMetrics()
	stopControl := serveControl(h, stateDir, logger)
	defer stopControl()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tailDone := startTails(h.Bus(), tails, stdout, logger)
	defer tailDone()
	caps := host.ReadCapsules(found, host.LoadOptions{RunLoop: true}, logger)
	// Boot loads them in dependency order, several at once, waits for the run-loop capsules to
	// signal ready (so that what is published next reaches them) and announces
	// astrid.v1.capsules_loaded; each load logs how it ended.
	ready := h.Boot(ctx, caps).Loaded()
	if ready == 0 && ctx.Err() == nil {
		logger.Error("no capsule could be loaded")
		h.Shutdown(context.Background())
		return exitUsage
	}
	for _, p := range pubs {
		if ctx.Err() != nil {
			break // stopping during the boot
		}
		if err := h.Publish(p.topic, []byte(p.payload)); err != nil {
			logger.Error("--publish failed", "topic", p.topic, "error", err)
		}
	}
	stopWatch := func() {}
	if *watch && ctx.Err() == nil {
		stopWatch = startWatch(h, logger)
	}
	logger.Info("running; send SIGINT or SIGTERM to stop", "capsules", ready)
	<-ctx.Done()
	stopWatch() // before the unload: no reload starts behind it
	// A second signal skips the orderly unload. Its handler is in place before the first one's is
	// released, so no second signal can take the default action (death, leaving the runtime
	// directory behind).
	force := make(chan os.Signal, 1)
	signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(force)
	stop()
	unloaded := make(chan struct{})
	defer close(unloaded)
	go func() {
		select {
		case <-force:
			logger.Error("second signal: exiting at once")
			forceExit(h, stateDir)
		case <-unloaded:
		}
	}()
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	h.Shutdown(sctx)
	logger.Info("stopped")
	return exitOK
}

// forceExit ends the process at once, on a second signal. Pdeathsig takes the shims (and, through
// their sandbox helpers, what they started) down with the host; what the orderly unload would have
// removed is removed here: the runtime directory with every socket, and the control socket.
func forceExit(h *host.Host, stateDir string) {
	h.RemoveRuntimeDir() // shims may still be starting into it: see Host.RemoveRuntimeDir
	os.Remove(control.SocketPath(stateDir))
	os.Exit(exitFailure)
}

// startTails prints the bus messages matching each pattern as JSON lines on out until the
// returned function is called (it waits for the printers to finish).
func startTails(b *bus.Bus, patterns []string, out io.Writer, logger hclog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	printer := &tailPrinter{out: out}
	for _, p := range patterns {
		sub := b.Subscribe(p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			for {
				env, err := sub.Recv(ctx, 10<<20)
				if env.Lagged > 0 {
					logger.Warn("--tail fell behind; messages were skipped", "pattern", p, "skipped", env.Lagged)
				}
				for _, m := range env.Messages {
					printer.message(m)
				}
				if err != nil {
					// Stopping: print what is still queued (the host's last events) and end.
					for _, m := range sub.Poll(10 << 20).Messages {
						printer.message(m)
					}
					return
				}
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// startWatch starts reloading the capsules whose files change (--watch) until the returned
// function is called. A host that cannot watch runs on without it, saying so.
func startWatch(h *host.Host, logger hclog.Logger) (stop func()) {
	w, err := h.Watch(host.WatchOptions{})
	if err != nil {
		logger.Error("--watch: capsules will not be reloaded when they change", "error", err)
		return func() {}
	}
	logger.Info("--watch: reloading capsules when their files change", "debounce", host.DefaultWatchDebounce)
	return func() { w.Close() }
}
