package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/host/process"
	"github.com/astrid-go/astrid/sandbox"
)

const doctorSynopsis = `Usage: astrid-host doctor

Probes which sandbox layers this machine supports (namespaces, landlock, seccomp, rlimits,
cgroups) and says, for each missing one, why it is missing and what it would protect against;
then what is capped on this machine and what is not (memory, processes, files).

Exit status: 0 when the default policy (--sandbox=required) can run here, 1 when a layer it needs
is missing (run with --sandbox=best-effort, or fix what the report names), 2 for usage errors.`

func doctorCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("doctor", doctorSynopsis, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(fs, stderr, err)
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, fmt.Errorf("unexpected argument %q", pos[0]))
	}
	helper, _, err := sandboxHelper(hclog.NewNullLogger())
	if err != nil {
		fmt.Fprintf(stderr, "astrid-host doctor: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "sandbox helper: %s\n", helper)
	support := sandbox.Probe(helper)
	fmt.Fprint(stdout, support.Report())
	fmt.Fprintf(stdout, "\n%s", limitsReport(support))
	if err := support.CheckPolicy(sandbox.Required); err != nil {
		fmt.Fprintf(stdout, "\n--sandbox=required (the default) cannot run here: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "\n--sandbox=required (the default) can run here.")
	return exitOK
}

// limitsReport says, resource by resource, what is capped on this machine under --sandbox
// required or best-effort and by what, and what is not capped and why. The numbers are the
// ones the host applies (the manifest's defaults, the process manager's and the shims' limits).
func limitsReport(s *sandbox.Support) string {
	mib := func(n uint64) string { return fmt.Sprintf("%d MiB", n>>20) }
	cgroup := func(what string) string {
		if s.Available(sandbox.LayerCgroup) {
			return "capped   " + what + " (cgroup " + s.Detail(sandbox.LayerCgroup) + ")"
		}
		return "NOT capped: no cgroup here (" + s.Reason(sandbox.LayerCgroup) + ")"
	}
	rows := [][2]string{
		{"capsule memory", fmt.Sprintf("capped   [limits] memory, default %s: the guest's WebAssembly memory (wasmtime; whatever the sandbox)", mib(manifest.DefaultMemory))},
		{"shim memory", cgroup(fmt.Sprintf("[limits] memory + %s for the Go runtime, wasmtime, compiled code and compiling; swap included; killed past it", mib(host.ShimMemoryOverhead)))},
		{"shim tasks", cgroup(fmt.Sprintf("%d, threads included", host.ShimPids))},
		{"spawned memory", cgroup(fmt.Sprintf("[limits] process_memory, default %s per process tree; swap included; killed past it", mib(manifest.DefaultProcessMemory)))},
		{"spawned tasks", cgroup(fmt.Sprintf("%d per process tree", process.PidsLimit))},
		{"open files", fmt.Sprintf("capped   %d per process (RLIMIT_NOFILE)", sandbox.DefaultOpenFiles)},
		{"file size", fmt.Sprintf("capped   %s per file a spawned process writes (RLIMIT_FSIZE); no core dumps", mib(sandbox.DefaultFileSize))},
		{"CPU time", "NOT capped: a guest call ends at [limits] call_timeout; a spawned process runs until it exits, timeout_ms or a kill"},
		{"disk space", "NOT capped: a spawned process may fill the workspace (each file up to the size above)"},
	}
	var b strings.Builder
	b.WriteString("What is capped here (--sandbox=required or best-effort; off keeps only the capsule memory):\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-15s %s\n", r[0], r[1])
	}
	return b.String()
}
