// Command embed runs one capsule's export from a Go program, through the host package: the
// runtime of astrid-host, embedded. It is the smallest complete embedding: the program is its own
// sandbox helper, probes the machine's sandbox layers, verifies the shim, starts a host, loads a
// capsule, calls an export and shuts everything down.
//
//	go build -o bin/embed ./examples/embed
//	bin/embed -shim bin/astrid-shim examples/hello greet world
//
// It prints the export's output. Without -shim, astrid-shim is looked for next to the program and
// on $PATH (host.FindShim).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/sandbox"
)

func main() {
	// The sandbox confines shims by re-executing this very program as its helper: answer that
	// first, before anything else runs.
	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg {
		sandbox.HelperMain(os.Args[1:])
	}
	shimPath := flag.String("shim", "", "the astrid-shim executable (default: next to this program, or on $PATH)")
	state := flag.String("state", "", "state directory (default: a temporary one, removed at exit)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: embed [-shim PATH] [-state DIR] CAPSULE_DIR EXPORT [INPUT]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 || flag.NArg() > 3 {
		flag.Usage()
		os.Exit(2)
	}
	out, err := run(*shimPath, *state, flag.Arg(0), flag.Arg(1), flag.Arg(2))
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}

// run loads the capsule in dir on a new host and calls export with input.
func run(shimPath, state, dir, export, input string) ([]byte, error) {
	logger := hclog.New(&hclog.LoggerOptions{Name: "embed", Level: hclog.Warn, Output: os.Stderr})
	if shimPath == "" {
		p, err := host.FindShim()
		if err != nil {
			return nil, err
		}
		shimPath = p
	}
	shim, err := host.VerifyShim(shimPath)
	if err != nil {
		return nil, err
	}
	if state == "" {
		d, err := os.MkdirTemp("", "embed-state-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		state = d
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Best-effort applies every layer this machine has and says which are missing; astrid-host's
	// default, Required, refuses to start without namespaces and landlock.
	support := sandbox.Probe(self)
	for _, l := range support.Missing() {
		logger.Warn("sandbox layer unavailable", "layer", l, "why", support.Reason(l))
	}
	h, err := host.New(host.Config{
		Shim:     shim,
		StateDir: state,
		Logger:   logger,
		LogLevel: hclog.Warn,
		Sandbox:  sandbox.New(self, sandbox.BestEffort, support),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer h.Shutdown(ctx)

	// Load validates the manifest; problems that are only warnings (unknown keys, say) come
	// back alongside a usable manifest.
	m, problems, err := manifest.Load(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		logger.Warn("manifest", "problem", p.String())
	}
	inst, _, err := h.Load(ctx, m, host.LoadOptions{})
	if err != nil {
		return nil, err
	}
	// A *host.GuestError is the guest's own failure (an error return, a trap); other errors
	// are the runtime's (no such export, the shim gone).
	return inst.Call(ctx, export, []byte(input), 0)
}
