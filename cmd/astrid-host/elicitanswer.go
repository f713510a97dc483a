package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/astrid-go/astrid/host/elicit"
	"github.com/astrid-go/astrid/shared/logtext"
)

// installAnswers answers the elicit requests of an install's lifecycle hook (astrid_elicit):
// with the --set value of the key when there is one (checked: a select's value must be one of
// its options, a secret must not be empty, an array is a JSON array), else on a terminal by
// asking the operator (secrets without echo, a select's options numbered), else not at all: the
// request is cancelled, so the hook fails at once, and err names the key.
type installAnswers struct {
	sets     map[string]string
	in       io.Reader
	fd       int
	terminal bool
	out      io.Writer

	mu   sync.Mutex
	used map[string]bool
	err  error // the first request that got no answer
}

func newInstallAnswers(sets map[string]string, stdin io.Reader, stderr io.Writer) *installAnswers {
	fd, ok := terminalOf(stdin)
	return &installAnswers{sets: sets, in: stdin, fd: fd, terminal: ok, out: stderr, used: map[string]bool{}}
}

// answer is the host.ElicitAnswerer: nil, nil cancels the request.
func (a *installAnswers) answer(e elicit.Event) (*string, []string) {
	value, values, err := a.find(e)
	if err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = err
		}
		a.mu.Unlock()
		return nil, nil
	}
	return value, values
}

func (a *installAnswers) find(e elicit.Event) (*string, []string, error) {
	f := e.Field
	key := logtext.Escape(f.Key)
	if v, ok := a.sets[f.Key]; ok {
		a.mu.Lock()
		a.used[f.Key] = true
		a.mu.Unlock()
		value, values, err := elicit.CheckValue(f, v)
		if err != nil {
			return nil, nil, fmt.Errorf("--set %s", logtext.Escape(err.Error()))
		}
		return value, values, nil
	}
	if !a.terminal {
		return nil, nil, fmt.Errorf("the install hook asks for %s, and there is no terminal to ask on: pass --set %s=VALUE", key, key)
	}
	p := &prompter{in: a.in, fd: a.fd, out: a.out}
	for try := 0; try < promptTries; try++ {
		v, err := p.askElicit(logtext.Escape(e.CapsuleID), f)
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%s: no answer (end of input)", key)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", key, err)
		}
		if v == "" && f.Default != nil {
			v = *f.Default
		}
		value, values, err := elicit.CheckValue(f, v)
		if err == nil {
			return value, values, nil
		}
		fmt.Fprintf(a.out, "  %s\n", logtext.Escape(err.Error()))
	}
	return nil, nil, fmt.Errorf("%s: no valid answer after %d tries", key, promptTries)
}

// failure is the first request that got no answer, nil when all did.
func (a *installAnswers) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// unused are the --set keys no request asked for, in order.
func (a *installAnswers) unused() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(a.sets)) {
		if !a.used[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

// askElicit asks the operator for field f of capsule id once, on the terminal: a secret without
// echo, a select with its options numbered (a number or the option itself answers), an array one
// item a line. It returns the answer as CheckValue takes it ("" for none).
func (p *prompter) askElicit(capsule string, f elicit.Field) (string, error) {
	fmt.Fprintf(p.out, "\nCapsule %s asks for %s:\n", capsule, logtext.Escape(f.Key))
	label := logtext.Escape(f.Prompt)
	hint := ""
	if f.Default != nil && f.Kind() != elicit.KindSecret {
		hint = " [" + logtext.Escape(*f.Default) + "]"
	}
	switch f.Kind() {
	case elicit.KindSecret:
		return p.secret(label)
	case elicit.KindArray:
		return p.array(label + hint)
	case elicit.KindSelect:
		opts := f.Options()
		for i, o := range opts {
			fmt.Fprintf(p.out, "  %d) %s\n", i+1, logtext.Escape(o))
		}
		fmt.Fprintf(p.out, "  %s%s: ", label, hint)
		v, err := readLine(p.in)
		if n, nerr := strconv.Atoi(v); err == nil && nerr == nil && n >= 1 && n <= len(opts) {
			v = opts[n-1]
		}
		return v, err
	}
	fmt.Fprintf(p.out, "  %s%s: ", label, hint)
	return readLine(p.in)
}
