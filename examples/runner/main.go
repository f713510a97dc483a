//go:build wasip1

// Command runner is an example capsule of the astrid Go SDK: it runs
// commands through the host and streams their output onto the bus. Its
// exports:
//
//   - run: the run-loop of `astrid-host run`, which starts it once after
//     loading the capsule. It runs the configured script in the background
//     with /bin/sh -c (the environment variable RUN holds the run's number,
//     from 1) and publishes each line the script writes on runner.v1.output,
//     as {"run":n,"stream":"stdout","line":"..."}, then
//     {"run":n,"exit_code":c,"signal":s,"lines":k} on runner.v1.exit. It
//     does this once at start and once more for each message published on
//     runner.v1.start (its payload is ignored), until the capsule is
//     unloaded;
//   - run_once: runs the script given as input (the configured one if the
//     input is empty) with /bin/sh -c, waits for it, at most the configured
//     timeout, and outputs the result as JSON:
//     {"stdout":"...","stderr":"...","exit_code":c,"truncated":false}. A
//     script that fails is a result, not an error of the export;
//   - upper: writes the input to the standard input of /usr/bin/tr a-z A-Z,
//     a background process, and outputs what tr writes back (up to 1 MiB:
//     the host keeps the newest 1 MiB of a background process's output
//     until it is read).
//
// The configuration ([env] in Capsule.toml, or --config) sets script and
// timeout. The manifest allows running /bin/sh and /usr/bin/tr, publishing
// on runner.v1.output and runner.v1.exit, and subscribing to
// runner.v1.start.
//
// Build it from the repository root:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/runner/runner.wasm ./examples/runner
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

// main is required by the c-shared build mode and never called: the host runs
// _initialize and then the exports.
func main() {}

const (
	// shell runs the scripts; it must be listed in [capabilities]
	// host_process exactly as written here.
	shell = "/bin/sh"

	startTopic  = "runner.v1.start"
	outputTopic = "runner.v1.output"
	exitTopic   = "runner.v1.exit"

	// poll is how long run waits for the script to end before it reads and
	// publishes what the script has written so far.
	poll = 200 * time.Millisecond
)

// outputLine is a message on runner.v1.output: one line of a run's output.
type outputLine struct {
	Run    int64  `json:"run"`
	Stream string `json:"stream"` // "stdout" or "stderr"
	Line   string `json:"line"`
}

// exitMessage is the message on runner.v1.exit that ends a run.
type exitMessage struct {
	Run      int64 `json:"run"`
	ExitCode int   `json:"exit_code"` // -1 if a signal killed the script
	Signal   int   `json:"signal"`    // the signal's number, or 0
	Lines    int   `json:"lines"`     // how many lines run published for it
}

//go:wasmexport run
func run() int32 { return astrid.Export(runForever) }

// runForever runs the script once, then once for each request on
// runner.v1.start, until the host interrupts the call (it unloads the
// capsule): Recv then returns, and the next Recv, on a subscription the host
// has dropped, traps.
func runForever([]byte) ([]byte, error) {
	// Subscribe before saying ready, so that no request published once the
	// host announces the capsules as loaded is missed.
	sub, err := astrid.Subscribe(startTopic)
	if err != nil {
		return nil, err
	}
	astrid.SignalReady()
	pending := 1 // the run at start
	for n := int64(1); ; {
		for ; pending > 0; pending-- {
			if err := stream(n, configuredScript()); err != nil {
				return nil, err
			}
			n++
		}
		env, err := sub.Recv(astrid.MaxRecvTimeout)
		if err != nil {
			return nil, err
		}
		pending = len(env.Messages)
	}
}

// stream runs script as run n in the background and publishes its output
// line by line as it comes, then its exit.
func stream(n int64, script string) error {
	p, err := astrid.SpawnBackground(astrid.Command{
		Cmd:  shell,
		Args: []string{"-c", script},
		Env:  map[string]string{"RUN": strconv.FormatInt(n, 10)},
	})
	if err != nil {
		return err
	}
	astrid.Logf(astrid.LogInfo, "run %d: started process %d", n, p.ID())
	stdout := &lines{run: n, stream: "stdout"}
	stderr := &lines{run: n, stream: "stderr"}
	logs, err := follow(p, stdout, stderr)
	// Kill whatever happened: it releases the process's slot (the host
	// allows 8 per capsule, ended or not) and returns the output written
	// since the last ReadLogs.
	rest, killErr := p.Kill()
	if err != nil {
		return err
	}
	if killErr != nil {
		return killErr
	}
	for _, err := range []error{
		stdout.add(rest.Stdout), stderr.add(rest.Stderr),
		stdout.flush(), stderr.flush(),
	} {
		if err != nil {
			return err
		}
	}
	astrid.Logf(astrid.LogInfo, "run %d: exit code %d, signal %d", n, logs.ExitCode, logs.Signal)
	return astrid.Publish(exitTopic, exitMessage{
		Run: n, ExitCode: logs.ExitCode, Signal: logs.Signal, Lines: stdout.count + stderr.count,
	})
}

// follow publishes what p writes until it ends, and returns its last logs,
// which say how it ended. Wait returns as soon as p ends, so a short script
// costs no more than its run time; the poll only bounds how long a line
// waits before it is published.
func follow(p *astrid.Process, stdout, stderr *lines) (astrid.Logs, error) {
	for {
		if _, err := p.Wait(poll); err != nil {
			return astrid.Logs{}, err
		}
		logs, err := p.ReadLogs()
		if err != nil {
			return astrid.Logs{}, err
		}
		if err := stdout.add(logs.Stdout); err != nil {
			return logs, err
		}
		if err := stderr.add(logs.Stderr); err != nil {
			return logs, err
		}
		if !logs.Running {
			return logs, nil
		}
	}
}

// lines publishes one output stream of a run on runner.v1.output, a line at
// a time: ReadLogs returns whatever the process has written, which may end
// in the middle of a line, so the start of a line is kept until its end
// comes.
type lines struct {
	run     int64
	stream  string
	partial string // the start of a line whose end has not come yet
	count   int    // lines published
}

// add publishes each complete line of the output s, after what was kept.
func (l *lines) add(s string) error {
	s = l.partial + s
	for {
		line, after, found := strings.Cut(s, "\n")
		if !found {
			break
		}
		if err := l.publish(line); err != nil {
			return err
		}
		s = after
	}
	l.partial = s
	return nil
}

// flush publishes the last line if the output did not end with a newline.
func (l *lines) flush() error {
	if l.partial == "" {
		return nil
	}
	line := l.partial
	l.partial = ""
	return l.publish(line)
}

func (l *lines) publish(line string) error {
	l.count++
	return astrid.Publish(outputTopic, outputLine{Run: l.run, Stream: l.stream, Line: line})
}

//go:wasmexport run_once
func runOnce() int32 { return astrid.Export(runScript) }

// runScript runs the script given as input, or the configured one, to the
// end and outputs its result as JSON.
func runScript(input []byte) ([]byte, error) {
	script := strings.TrimSpace(string(input))
	if script == "" {
		script = configuredScript()
	}
	timeout, err := configuredTimeout()
	if err != nil {
		return nil, err
	}
	res, err := astrid.Spawn(astrid.Command{
		Cmd:     shell,
		Args:    []string{"-c", script},
		Env:     map[string]string{"RUN": "once"},
		Timeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	if res.TimedOut {
		astrid.Logf(astrid.LogWarn, "run_once: the script ran longer than %v and was killed", timeout)
	}
	astrid.Logf(astrid.LogInfo, "run_once: exit code %d, %d bytes of stdout", res.ExitCode, len(res.Stdout))
	return json.Marshal(res)
}

//go:wasmexport upper
func upper() int32 { return astrid.Export(upperCase) }

// upperCase pipes the input through tr, a background process fed through
// its standard input: write, close, wait, then Kill to collect the output
// and release the process.
func upperCase(input []byte) ([]byte, error) {
	p, err := astrid.SpawnBackground(astrid.Command{Cmd: "/usr/bin/tr", Args: []string{"a-z", "A-Z"}})
	if err != nil {
		return nil, err
	}
	if _, err := p.WriteStdin(input); err != nil {
		p.Kill()
		return nil, err
	}
	if err := p.CloseStdin(); err != nil {
		p.Kill()
		return nil, err
	}
	st, err := p.Wait(5 * time.Second)
	if err != nil {
		p.Kill()
		return nil, err
	}
	res, err := p.Kill() // the output tr wrote, all of it still buffered
	if err != nil {
		return nil, err
	}
	if st.Running {
		return nil, errors.New("upper: tr did not finish within 5s")
	}
	if st.ExitCode != 0 {
		return nil, fmt.Errorf("upper: tr failed (exit code %d, signal %d): %s", st.ExitCode, st.Signal, res.Stderr)
	}
	return []byte(res.Stdout), nil
}

// configuredScript returns the script of the configuration.
func configuredScript() string {
	if s, ok := astrid.Config("script"); ok {
		return s
	}
	return "echo no script configured"
}

// configuredTimeout returns the configuration's timeout, 10 s if it is not
// set.
func configuredTimeout() (time.Duration, error) {
	s, ok := astrid.Config("timeout")
	if !ok {
		return 10 * time.Second, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("config timeout = %q is not a positive duration such as 10s", s)
	}
	return d, nil
}
