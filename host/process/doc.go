// Package process is the host's process manager: it runs the OS processes a capsule asks for
// (docs/abi.md#processes), confined by the sandbox package, and owns them until they are reaped.
//
// One Manager serves one capsule instance. Its operations are the seven process host functions
// (Op): a synchronous spawn, a background spawn, and read-logs, kill, wait, signal and
// write-stdin on a background process. Handle is the JSON entry point the host's RPC adapter
// calls; the typed methods are the same operations for Go callers. Every error is the text the
// guest sees; where upstream astrid has a text for a failure, it is kept.
//
// # Lifetime
//
// Every process is started through the Manager's sandbox.Pool (warm helpers shared by the
// instance's processes one after another; see sandbox.Pool) and is killed as a tree (the pid namespace
// where the sandbox has one, else the process group) when it is killed, when its synchronous
// spawn times out or is cancelled, and when the Manager is closed. When the program itself
// exits, whatever it left running in its tree is killed too, as the sandbox's pid namespace
// would do: a capsule cannot leave a process behind by backgrounding it in a shell.
// Close (capsule unload or crash, host exit) kills every tree and returns once all of them are
// reaped and every goroutine of the Manager has ended; later requests fail with ErrClosed.
//
// Each process finds an empty private tmp directory: a warm helper's, made under
// Config.TmpRoot, emptied before the helper takes the next process and removed when it ends.
//
// # Decisions where the specification is silent
//
//   - Limit: Config.MaxBackground counts background processes that are running, or that have
//     exited but whose end has not yet been reported by a read_logs (running=false). A process
//     whose exit and final output the capsule has read stops counting — the limit is on live
//     processes — but its entry stays, so a later kill, wait or read_logs still answers (kill
//     removes it, as upstream). At most RetainedExited such entries are kept per Manager;
//     older ones are forgotten (their id then reads "no background process with id N").
//     MaxBackground 0 allows no background process at all (manifest max_processes = 0); the
//     manifest parser supplies the default of 8.
//   - spawn_background refuses timeout_ms (silently ignoring a timeout the caller relies on
//     would be worse): use wait with timeout_ms, then kill.
//   - A background process's stdin is a pipe kept open for write_stdin until write_stdin with
//     "close": true, a kill, or the process's exit; the request's "stdin", if any, is written to
//     it before spawn_background returns (and not closed). A program that reads stdin therefore
//     waits for write_stdin. A synchronous spawn's stdin is the request's "stdin" followed by EOF,
//     or empty (the null device) without it; never the host's stdin.
//   - write_stdin blocks until the child has taken all the data into its pipe, the process
//     ends, or the request's context is cancelled. Closing an already closed stdin is not an
//     error; writing to it is.
//   - signal goes to the program's process group (as a terminal sends it), not the pid alone.
//     Signalling a process that has exited is an error.
//   - kill answers "killed": true when the process was still running when the kill was asked
//     for, false when it had already ended. "exit_code" is null and "signal" is set when the
//     process died of a signal (read_logs and kill add "signal" as spawn does).
//   - Timeouts: spawn's timeout_ms must be between 1 and MaxTimeoutMS; wait's timeout_ms between
//     0 (just look) and MaxTimeoutMS; wait without timeout_ms waits until the process ends or the
//     context is cancelled. A cancelled synchronous spawn kills its tree and returns upstream's
//     result {"stdout":"","stderr":"process cancelled","exit_code":-1}.
//   - cmd equal to an allowed entry is resolved through Config.PassEnv's PATH when it has no
//     slash (relative PATH entries are skipped), against the request's working directory when it
//     is relative with a slash ("./gradlew"), and used as is when absolute. A program outside the
//     system directories and the workspace is added to the sandbox's read-only paths, so the
//     manifest's choice of program is honoured under landlock.
//   - env: the child's environment is exactly the pass-through variables present in
//     Config.PassEnv plus the request's env (which may override LANG, LC_ALL, LC_CTYPE and TZ).
//     Reserved keys (env.go: the variables that would let the caller choose or inject code) are
//     compared case-insensitively. A JSON object with a duplicated key keeps
//     the last value (Go's decoder), so "no duplicates" holds by construction.
//   - Requests ignore unknown JSON fields, as upstream's serde decoding does.
//   - Output is lossy UTF-8 as Rust's String::from_utf8_lossy makes it (one U+FFFD per maximal
//     invalid subsequence). read_logs on a running process keeps an incomplete UTF-8 sequence at
//     the end of a ring for the next call, so a character split between two reads is not lost.
//   - Process limits given to the sandbox: default rlimits and a cgroup with pids.max PidsLimit
//     (enough for a build with parallel compilers, small enough to stop a fork bomb) and the
//     memory limit Config.MemoryBytes ([limits] process_memory, default 2 GiB per tree: the
//     capsule's own memory limit does not say what a compiler needs), where the sandbox has the
//     cgroup layer. A tree past its memory limit is killed by the kernel.
//
// # Result sizes
//
// A spawn result holds the start of each stream, as much as takes at most MaxCaptureBytes in
// the result's JSON string ("truncated" says whether anything was dropped): the bound is on the
// encoded text, since after lossy decoding and JSON escaping a byte can take up to six bytes (a
// control character becomes \u00XX). A spawn result is therefore at most 2×10 MiB plus a few
// hundred bytes whatever the child writes. read_logs and kill hold at most RingBytes of each
// stream, so at most 2×6×1 MiB. The transport between shim and host accepts both
// (shared.MaxProcessResultBytes).
//
// A background process reads as running until it has been reaped and its output collected:
// normally at once, at most DrainGrace later when a process that escaped the tree kill (only
// possible without a pid namespace) still holds its output pipe.
//
// # Concurrency
//
// Every process has one supervising goroutine (started with it, ended once the process is
// reaped) that owns the process's reader goroutines (ended at EOF, or DrainGrace after the tree
// was killed if an escaped process still holds the pipe) and, for a synchronous spawn with
// stdin, its stdin feeder (ended when the data is written or the pipe is closed at exit). Close
// waits for every supervisor.
//
// # Tests
//
// The tests run real processes under sandbox policy Off; ASTRID_TEST_SANDBOX=required (or
// best-effort) runs them under the real sandbox, with the test binary as its helper, which also
// enables the setsid-grandchild test that only a pid namespace can pass.
package process
