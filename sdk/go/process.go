package astrid

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Processes: a capsule has no operating system of its own, but it may ask
// the host to run the commands its manifest lists in [capabilities]
// host_process, and read their output:
//
//	[capabilities]
//	host_process = ["/bin/sh"]
//
// The request's Cmd must equal one of those entries exactly ("/bin/sh" is
// not "sh"). The host runs the process sandboxed, in the capsule's
// workspace, with a cleared environment (PATH, LANG, LC_ALL, LC_CTYPE and TZ
// pass through, plus the request's Env).
//
// Spawn runs a command to completion and returns its output; SpawnBackground
// starts one and returns a Process, whose output the host keeps in ring
// buffers until the capsule reads it. Requests and results cross as JSON, so
// what goes in (arguments, environment, stdin) must be UTF-8 text, and the
// output comes back as text: the host replaces bytes that are not UTF-8 with
// U+FFFD.
//
// The host traps the call, with its message, when it refuses a request: a
// command the manifest does not list, a reserved Env key (PATH, LD_*, …), a
// Dir outside the workspace, a ninth background process, a process id that
// is not the capsule's ("no background process with id N"), a sandbox that
// cannot be set up. The functions here return errors only for what they can
// detect themselves.

// MaxStdinWrite is the most the host takes in one write to a background
// process's stdin. WriteStdin splits longer data into writes of at most this
// size.
const MaxStdinWrite = 1 << 20

// Command describes a process for the host to run, with Spawn or
// SpawnBackground.
type Command struct {
	// Cmd is the program to run. It must equal an entry of the manifest's
	// [capabilities] host_process, or the host refuses it.
	Cmd string
	// Args are the arguments, without the program name.
	Args []string
	// Env holds environment variables added to the process's otherwise
	// cleared environment. The host refuses reserved keys (PATH, LD_*,
	// DYLD_*, BASH_ENV, ENV, PYTHONPATH, NODE_OPTIONS, …).
	Env map[string]string
	// Dir is the working directory, relative to the capsule's workspace;
	// empty means the workspace itself. The host refuses absolute paths and
	// paths that leave the workspace.
	Dir string
	// Stdin is written to the process's standard input when it starts.
	// Spawn's process then reads its end; a background process reads what
	// Process.WriteStdin writes next, until Process.CloseStdin.
	Stdin string
	// Timeout bounds how long Spawn lets the process run: when it is up the
	// host kills the process and Spawn returns with TimedOut set. Zero means
	// no bound other than the call's own. SpawnBackground does not take one
	// (see Process.Wait and Process.Kill).
	Timeout time.Duration
}

// ProcessResult is the outcome of Spawn: how the process ended and what it
// wrote. Its JSON tags are the host's field names, so a capsule may pass it
// on as JSON as it is.
type ProcessResult struct {
	// Stdout and Stderr are what the process wrote to its standard output
	// and error, each cut at 10 MiB (see Truncated).
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// ExitCode is the process's exit status, or -1 if a signal killed it
	// (see Signal), as os.ProcessState.ExitCode reports it.
	ExitCode int `json:"exit_code"`
	// Signal is the number of the signal that killed the process (9 for
	// SIGKILL, 15 for SIGTERM), or 0 if it exited by itself.
	Signal int `json:"signal,omitempty"`
	// Truncated reports that Stdout or Stderr was cut at its cap.
	Truncated bool `json:"truncated"`
	// TimedOut reports that the process outlived the Command's Timeout and
	// the host killed it.
	TimedOut bool `json:"timed_out,omitempty"`
}

// Success reports whether the process exited with status 0 within its
// timeout.
func (r *ProcessResult) Success() bool { return r.ExitCode == 0 && r.Signal == 0 && !r.TimedOut }

// Spawn runs cmd through the host, waits for it to end and returns what it
// wrote and how it ended. A process that fails (exits non-zero, is killed)
// is a result, not an error, as in os/exec's Output; check ExitCode or
// Success.
//
// The capsule does nothing else while the process runs, so the wait counts
// against the call's timeout ([limits] call_timeout), except in a run-loop
// capsule's run export, which has none. Spawn returns an error, without
// asking the host, if cmd.Cmd is empty, cmd.Timeout is negative or a string
// of cmd is not UTF-8, and if the host's result cannot be decoded.
func Spawn(cmd Command) (*ProcessResult, error) {
	req, err := encodeCommand("Spawn", cmd, true)
	if err != nil {
		return nil, err
	}
	res := new(ProcessResult)
	if err := decodeResult("Spawn", callHost(hostSpawn, req), res); err != nil {
		return nil, err
	}
	return res, nil
}

// Process is a process that the host runs in the background for the capsule,
// from SpawnBackground. The host keeps the newest 1 MiB of each of its output
// streams until ReadLogs or Kill drains them; what the process writes beyond
// that while nobody reads is lost, oldest first.
//
// Unlike a Memory, a Process is not tied to the current call: the process
// lives, in the host, until Kill or the end of the capsule instance, so a
// capsule may keep it (or its ID, see FindProcess) for later calls. It
// belongs to the capsule instance and to the principal that started it; for
// anyone else its ID names nothing. The host allows 8 background processes
// per capsule and keeps each one's slot until Kill, even after it has
// exited: Kill a process when done with it.
type Process struct {
	id     uint64
	killed bool
}

// SpawnBackground starts cmd in the background and returns at once, with
// the Process to read its output from, wait for it, signal or kill it. It
// returns an error, without asking the host, if cmd.Cmd is empty, cmd.Timeout
// is set or a string of cmd is not UTF-8, and if the host's result cannot be
// decoded.
func SpawnBackground(cmd Command) (*Process, error) {
	req, err := encodeCommand("SpawnBackground", cmd, false)
	if err != nil {
		return nil, err
	}
	var res struct {
		ID *uint64 `json:"id"`
	}
	if err := decodeResult("SpawnBackground", callHost(hostSpawnBackground, req), &res); err != nil {
		return nil, err
	}
	if res.ID == nil {
		return nil, errors.New("astrid: SpawnBackground: the host returned no process id")
	}
	return &Process{id: *res.ID}, nil
}

// FindProcess returns the Process with the given ID, one that SpawnBackground
// returned earlier in this capsule instance, for instance in another call
// that kept its ID in a variable. It does not ask the host: an ID that names
// no process of the capsule's makes the first call to the host trap.
func FindProcess(id uint64) *Process { return &Process{id: id} }

// ID returns the process's id, the number by which the host knows it (ids
// count from 1 in each capsule instance). It is not the operating system's
// pid.
func (p *Process) ID() uint64 { return p.id }

// Logs is what ReadLogs returns: the output the process wrote since the
// previous ReadLogs, and whether it is still running.
type Logs struct {
	// Stdout and Stderr are the output drained from the host's buffers:
	// at most the newest 1 MiB of each stream.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Running reports that the process has not ended yet.
	Running bool `json:"running"`
	// ExitCode is the process's exit status, or -1 while it runs or if a
	// signal killed it (see Signal).
	ExitCode int `json:"exit_code"`
	// Signal is the number of the signal that killed the process, or 0.
	Signal int `json:"signal,omitempty"`
}

// ReadLogs returns what the process has written since the previous ReadLogs
// (or Kill) and whether it is still running, without waiting. The host's
// buffers are emptied: each byte of output is returned once.
func (p *Process) ReadLogs() (Logs, error) {
	logs := Logs{ExitCode: -1}
	err := p.call("ReadLogs", hostReadProcessLogs, processRequest{}, &logs)
	return logs, err
}

// WaitResult is what Wait returns: whether the process has ended, and how.
type WaitResult struct {
	// Running reports that the process was still running when the wait
	// ended; TimedOut then says that the timeout was up.
	Running bool `json:"running"`
	// ExitCode is the process's exit status, or -1 while it runs or if a
	// signal killed it (see Signal).
	ExitCode int `json:"exit_code"`
	// Signal is the number of the signal that killed the process, or 0.
	Signal int `json:"signal,omitempty"`
	// TimedOut reports that the timeout was up before the process ended.
	TimedOut bool `json:"timed_out"`
}

// Wait waits until the process ends or timeout has passed, and says which.
// The timeout is rounded up to a whole millisecond; a timeout of 0 waits for
// as long as the call may (until the process ends, the call's timeout, or
// the host unloads the capsule), and a negative one does not wait. The
// process's output stays in the host's buffers for ReadLogs.
//
// The capsule does nothing else while Wait waits, so the wait counts against
// the call's timeout ([limits] call_timeout), except in a run-loop capsule's
// run export, which has none.
func (p *Process) Wait(timeout time.Duration) (WaitResult, error) {
	res := WaitResult{ExitCode: -1}
	err := p.call("Wait", hostWaitProcess, waitRequest(timeout), &res)
	return res, err
}

// waitRequest returns the request of Wait(timeout): no timeout_ms for 0,
// which waits as long as the call may, and 0 ms for a negative timeout, which
// does not wait.
func waitRequest(timeout time.Duration) processRequest {
	var req processRequest
	if timeout != 0 {
		ms := durationMillis(timeout)
		req.TimeoutMS = &ms
	}
	return req
}

// KillResult is what Kill returns: the output not read yet, and how the
// process ended.
type KillResult struct {
	// Killed reports that the host killed the process (or had found it
	// ended already) and forgot it.
	Killed bool `json:"killed"`
	// ExitCode is the process's exit status if it had exited by itself,
	// and -1 otherwise (it usually dies from the kill).
	ExitCode int `json:"exit_code"`
	// Stdout and Stderr are the output the process wrote since the last
	// ReadLogs, drained as ReadLogs does.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// Kill kills the process and every process it started (the whole process
// tree, with SIGKILL), returns the output not read yet, and releases the
// process's slot. Kill an ended process too: it then only returns the rest of
// its output and releases the slot. After Kill the Process cannot be used:
// its methods return an error without asking the host.
func (p *Process) Kill() (KillResult, error) {
	res := KillResult{ExitCode: -1}
	if err := p.call("Kill", hostKillProcess, processRequest{}, &res); err != nil {
		return res, err
	}
	p.killed = true
	return res, nil
}

// Signal is a signal that Process.Signal may send, by the name the host
// knows it by.
type Signal string

// The signals a capsule may send to its processes (SIGTERM, SIGHUP, …).
const (
	SignalTerm Signal = "term"
	SignalHup  Signal = "hup"
	SignalInt  Signal = "int"
	SignalUsr1 Signal = "usr1"
	SignalUsr2 Signal = "usr2"
	SignalStop Signal = "stop"
	SignalCont Signal = "cont"
	SignalKill Signal = "kill"
)

// valid reports whether the host knows the signal.
func (s Signal) valid() bool {
	switch s {
	case SignalTerm, SignalHup, SignalInt, SignalUsr1, SignalUsr2, SignalStop, SignalCont, SignalKill:
		return true
	}
	return false
}

// Signal sends sig to the process, for instance SignalTerm to ask it to
// stop, or SignalStop and SignalCont to pause and resume it. A signal name
// works as well as its constant: p.Signal("term"). Unlike Kill, Signal does
// not release the process: Wait for it, then Kill it. Signal returns an
// error, without asking the host, for a signal other than the constants'.
func (p *Process) Signal(sig Signal) error {
	if !sig.valid() {
		return fmt.Errorf("astrid: Signal: unknown signal %q (want term, hup, int, usr1, usr2, stop, cont or kill)", string(sig))
	}
	var res struct {
		OK bool `json:"ok"`
	}
	if err := p.call("Signal", hostSignalProcess, processRequest{Signal: sig}, &res); err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("astrid: Signal %s: the host did not signal process %d", sig, p.id)
	}
	return nil
}

// WriteStdin writes data to the process's standard input and returns how
// many bytes were written. Data longer than MaxStdinWrite goes in several
// writes. It returns an error, without asking the host, if data is not
// UTF-8 (stdin crosses as JSON text), and an error wrapping io.ErrShortWrite
// if the host took less than it was given. Writing no data does nothing.
func (p *Process) WriteStdin(data []byte) (int, error) {
	if !utf8.Valid(data) {
		return 0, errors.New("astrid: WriteStdin: data is not UTF-8; the host takes stdin as text")
	}
	n := 0
	for _, chunk := range stdinChunks(data, MaxStdinWrite) {
		w, err := p.writeStdin("WriteStdin", string(chunk), false)
		n += w
		if err != nil {
			return n, err
		}
		if w < len(chunk) {
			return n, fmt.Errorf("astrid: WriteStdin: process %d took %d of %d bytes: %w", p.id, w, len(chunk), io.ErrShortWrite)
		}
	}
	return n, nil
}

// CloseStdin closes the process's standard input, so that a process reading
// it sees its end.
func (p *Process) CloseStdin() error {
	_, err := p.writeStdin("CloseStdin", "", true)
	return err
}

// writeStdin makes one astrid_write_process_stdin_host call.
func (p *Process) writeStdin(op, data string, closeStdin bool) (int, error) {
	var res struct {
		Written int `json:"written"`
	}
	err := p.call(op, hostWriteProcessStdin, processRequest{Data: &data, Close: closeStdin}, &res)
	return res.Written, err
}

// call sends req, with the process's id, to the host function fn for the
// method op and decodes its result into res.
func (p *Process) call(op string, fn func(uint64) uint64, req processRequest, res any) error {
	if p == nil {
		return errors.New("astrid: " + op + ": nil Process")
	}
	if p.killed {
		return fmt.Errorf("astrid: %s: process %d was killed", op, p.id)
	}
	req.ID = p.id
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("astrid: %s: encoding the request: %w", op, err)
	}
	return decodeResult(op, callHost(fn, b), res)
}

// processRequest is the request of every process host function but the two
// spawns: the process's id and what the function needs besides.
type processRequest struct {
	ID        uint64  `json:"id"`
	TimeoutMS *int64  `json:"timeout_ms,omitempty"` // Wait; nil waits as long as the call may
	Signal    Signal  `json:"signal,omitempty"`     // Signal
	Data      *string `json:"data,omitempty"`       // WriteStdin, CloseStdin
	Close     bool    `json:"close,omitempty"`      // CloseStdin
}

// spawnRequest is a Command as the spawn host functions read it.
type spawnRequest struct {
	Cmd       string            `json:"cmd"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Cwd       string            `json:"cwd,omitempty"`
	Stdin     string            `json:"stdin,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
}

// encodeCommand checks cmd and encodes it for a spawn host function; only a
// synchronous spawn (sync) may have a timeout.
func encodeCommand(op string, cmd Command, sync bool) ([]byte, error) {
	if cmd.Cmd == "" {
		return nil, errors.New("astrid: " + op + ": empty Cmd")
	}
	switch {
	case cmd.Timeout < 0:
		return nil, fmt.Errorf("astrid: %s %s: negative Timeout %v", op, cmd.Cmd, cmd.Timeout)
	case cmd.Timeout > 0 && !sync:
		return nil, fmt.Errorf("astrid: %s %s: a background process takes no Timeout; Wait with a timeout, then Kill", op, cmd.Cmd)
	}
	if s, ok := firstNotUTF8(cmd); !ok {
		return nil, fmt.Errorf("astrid: %s %s: %s is not UTF-8; the host takes commands as text", op, cmd.Cmd, s)
	}
	b, err := json.Marshal(spawnRequest{
		Cmd:       cmd.Cmd,
		Args:      cmd.Args,
		Env:       cmd.Env,
		Cwd:       cmd.Dir,
		Stdin:     cmd.Stdin,
		TimeoutMS: durationMillis(cmd.Timeout),
	})
	if err != nil {
		return nil, fmt.Errorf("astrid: %s %s: encoding the request: %w", op, cmd.Cmd, err)
	}
	return b, nil
}

// firstNotUTF8 names the first string of cmd that is not UTF-8, which JSON
// would carry altered, and reports whether they all are.
func firstNotUTF8(cmd Command) (string, bool) {
	if !utf8.ValidString(cmd.Cmd) {
		return "Cmd", false
	}
	for i, a := range cmd.Args {
		if !utf8.ValidString(a) {
			return "Args[" + strconv.Itoa(i) + "]", false
		}
	}
	for k, v := range cmd.Env {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return "an Env entry", false
		}
	}
	if !utf8.ValidString(cmd.Dir) {
		return "Dir", false
	}
	if !utf8.ValidString(cmd.Stdin) {
		return "Stdin", false
	}
	return "", true
}

// durationMillis returns d in whole milliseconds, rounded up; 0 for d ≤ 0.
func durationMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// stdinChunks splits data, which is UTF-8, into pieces of at most limit
// bytes that do not cut a character in two, so that each crosses as JSON
// text unchanged. Empty data gives no pieces.
func stdinChunks(data []byte, limit int) [][]byte {
	var chunks [][]byte
	for len(data) > limit {
		n := limit
		for n > limit-utf8.UTFMax && !utf8.RuneStart(data[n]) {
			n--
		}
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	if len(data) > 0 {
		chunks = append(chunks, data)
	}
	return chunks
}

// callHost passes req to the process host function fn in a kernel block and
// returns a copy of the result block, freeing both.
func callHost(fn func(uint64) uint64, req []byte) []byte {
	m := AllocateBytes(req)
	r := FindMemory(fn(m.handle))
	m.Free()
	b := r.Bytes()
	r.Free()
	return b
}

// decodeResult decodes the result b of the host function behind op into
// res, whose fields keep their values where b has null or nothing.
func decodeResult(op string, b []byte, res any) error {
	if err := json.Unmarshal(b, res); err != nil {
		return fmt.Errorf("astrid: %s: decoding the host's result %.200q: %w", op, b, err)
	}
	return nil
}
