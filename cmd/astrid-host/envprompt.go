package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/astrid-go/astrid/host/envconfig"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/logtext"
)

// maxAnswerBytes bounds one line the operator types at a prompt: 64 KiB.
const maxAnswerBytes = 64 << 10

// promptTries is how often a prompt asks again after an answer its key does not allow.
const promptTries = 3

// terminalOf returns the file descriptor of r when r is a terminal.
var terminalOf = func(r io.Reader) (int, bool) {
	f, ok := r.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// promptEnv is called by install once a capsule is installed (its hook succeeded): on a
// terminal it asks the operator for each [env] value the capsule still misses (see
// envconfig.Resolve) and saves the answers where the host reads them
// (STATE/config/env/NAME.env.json); without a terminal it does nothing (the host publishes
// astrid.v1.onboarding.required at load, and `astrid-host config` sets values). The questions go
// to stderr, as upstream's install prompts do; stdout is left to the command's own output.
//
// Each question shows the key's request (else the key), its description, placeholder, default
// and an enum's values. An empty answer takes the default, or leaves the key missing; an answer
// the key does not allow is asked again, up to promptTries times. Secrets are read without
// echo. End of input stops the questions; the answers given so far are saved.
func promptEnv(stdin io.Reader, stdout, stderr io.Writer, stateDir string, m *manifest.Manifest) error {
	fd, ok := terminalOf(stdin)
	if !ok {
		return nil
	}
	saved, err := envconfig.ReadAll(stateDir, m)
	if err != nil {
		return err
	}
	missing := envconfig.Resolve(m, saved, nil).Missing
	if len(missing) == 0 {
		return nil
	}
	p := &prompter{in: stdin, fd: fd, out: stderr}
	fmt.Fprintf(stderr, "\nCapsule %s needs configuration:\n", m.ID())
	answers := map[string]string{}
	for _, f := range missing {
		v, ok, err := p.ask(f, m.Env[f.Key])
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr)
			break
		}
		if err != nil {
			return err
		}
		if ok {
			answers[f.Key] = v
		}
	}
	if len(answers) == 0 {
		fmt.Fprintf(stderr, "  Nothing saved; set values later with 'astrid-host config %s KEY=VALUE'.\n\n", m.ID())
		return nil
	}
	if err := envconfig.Update(stateDir, m, answers, nil); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "  Configuration saved in %s (secrets in the secret store).\n\n", envconfig.Path(stateDir, m.ID()))
	return nil
}

// prompter asks questions on a terminal.
type prompter struct {
	in  io.Reader
	fd  int
	out io.Writer
}

// ask asks for field f's value until one passes envconfig.CheckValue (up to promptTries times);
// ok is false when the operator gave none (the key stays missing).
func (p *prompter) ask(f envconfig.Field, def manifest.EnvDef) (value string, ok bool, err error) {
	label := def.Request
	if label == "" {
		label = f.Key
	}
	fmt.Fprintln(p.out)
	if f.Description != "" {
		fmt.Fprintf(p.out, "  %s\n", logtext.Escape(f.Description))
	}
	if f.Placeholder != "" {
		fmt.Fprintf(p.out, "  e.g. %s\n", logtext.Escape(f.Placeholder))
	}
	if f.FieldType.Kind == "Enum" {
		for i, o := range f.FieldType.Options {
			fmt.Fprintf(p.out, "  %d) %s\n", i+1, logtext.Escape(o))
		}
	}
	hint := ""
	if f.Default != nil && f.FieldType.Kind != "Secret" {
		hint = " [" + logtext.Escape(*f.Default) + "]"
	}
	for try := 0; try < promptTries; try++ {
		switch f.FieldType.Kind {
		case "Secret":
			value, err = p.secret(logtext.Escape(label))
		case "Array":
			value, err = p.array(logtext.Escape(label) + hint)
		default:
			fmt.Fprintf(p.out, "  %s%s: ", logtext.Escape(label), hint)
			value, err = readLine(p.in)
		}
		if err != nil {
			return "", false, err
		}
		if f.FieldType.Kind == "Enum" {
			if n, err := strconv.Atoi(value); err == nil && n >= 1 && n <= len(f.FieldType.Options) {
				value = f.FieldType.Options[n-1]
			}
		}
		if value == "" {
			if f.Default == nil {
				fmt.Fprintf(p.out, "  (left unset)\n")
				return "", false, nil
			}
			value = *f.Default
		}
		if err := envconfig.CheckValue(f.Key, def, value); err != nil {
			fmt.Fprintf(p.out, "  %s\n", logtext.Escape(err.Error()))
			continue
		}
		return value, true, nil
	}
	fmt.Fprintf(p.out, "  (left unset)\n")
	return "", false, nil
}

// secret reads a secret without echo. This is the one place the prompts handle a secret's
// value; envconfig.IsSecret decides which values are secrets.
func (p *prompter) secret(label string) (string, error) {
	restore, err := noEcho(p.fd)
	if err != nil {
		return "", fmt.Errorf("read a secret: turn the terminal's echo off: %w", err)
	}
	fmt.Fprintf(p.out, "  %s (input hidden): ", label)
	line, err := readLine(p.in)
	restore()
	fmt.Fprintln(p.out)
	return line, err
}

// noEcho turns the terminal's echo off (line editing, Ctrl-C and Ctrl-D keep working) until
// restore is called. An interrupt, termination or hang-up signal meanwhile restores the terminal
// first and is then delivered again, so a Ctrl-C at a secret's prompt ends the program as usual
// but never leaves the terminal without echo. (golang.org/x/term's ReadPassword neither
// restores the terminal on a signal nor returns at Ctrl-D.)
func noEcho(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		signal.Stop(sigs)
		return nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
			signal.Stop(sigs)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal)) // its usual effect, now
		case <-done:
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		signal.Stop(sigs)
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
	}, nil
}

// array reads items one per line until an empty line, and returns them as a JSON array ("" for
// none), the form upstream's onboarding saves an array in.
func (p *prompter) array(label string) (string, error) {
	fmt.Fprintf(p.out, "  %s (one value per line, an empty line ends):\n", label)
	var items []string
	for {
		fmt.Fprint(p.out, "  > ")
		line, err := readLine(p.in)
		if err != nil {
			return "", err
		}
		if line == "" {
			break
		}
		items = append(items, line)
	}
	if len(items) == 0 {
		return "", nil
	}
	b, err := json.Marshal(items)
	return string(b), err
}

// readLine reads one line from r, a byte at a time so that nothing after the line is consumed
// (the next question may change the terminal's mode), without its line end and trimmed of
// spaces. A line longer than maxAnswerBytes is an error; end of input before any byte is
// io.EOF.
func readLine(r io.Reader) (string, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) == maxAnswerBytes {
				return "", fmt.Errorf("the answer is longer than %d bytes", maxAnswerBytes)
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return "", io.EOF
			}
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSpace(string(line)), nil
}
