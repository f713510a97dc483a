// Package statusline is the line protocol of the sandbox helper's status channel: what the helper
// (astrid-host __sandbox-exec) tells the host about the program it starts, one line at a time.
// Both ends use it: the helper writes with Line.String, the host reads with Parse.
//
// The lines, in the order they come:
//
//	ready                      a warm helper (serve mode) is set up and waits for programs
//	exec                       Exec mode: the helper is about to become the program; EOF (the
//	                           pipe is close-on-exec) then means the program runs
//	started PID                fork mode: the program runs with this pid (the helper's namespace)
//	exit CODE SIGNAL [last]    fork mode: how the program ended (CODE -1 and SIGNAL set when a
//	                           signal killed it); "last" from a warm helper that cannot take
//	                           another program and ends
//	error setup|exec ERRNO MSG a setup step or the program's exec failed; ERRNO 0 when none;
//	                           the helper exits 127 after it (a warm helper goes on after exec)
package statusline

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what a line says.
type Kind int

// The kinds of line.
const (
	Ready Kind = iota + 1
	Exec
	Started
	Exit
	Error
)

// Line is one status line.
type Line struct {
	Kind Kind
	// PID is the program's pid (Started).
	PID int
	// Code and Signal are how the program ended (Exit); Last marks a warm helper's last run.
	Code   int
	Signal int
	Last   bool
	// Setup tells a failed setup step from a failed exec; Errno is the errno (0 if none) and
	// Msg the message, on one line (Error).
	Setup bool
	Errno int
	Msg   string
}

// String is the line as written, newline included. A message's newlines become spaces.
func (l Line) String() string {
	switch l.Kind {
	case Ready:
		return "ready\n"
	case Exec:
		return "exec\n"
	case Started:
		return fmt.Sprintf("started %d\n", l.PID)
	case Exit:
		last := ""
		if l.Last {
			last = " last"
		}
		return fmt.Sprintf("exit %d %d%s\n", l.Code, l.Signal, last)
	case Error:
		kind := "exec"
		if l.Setup {
			kind = "setup"
		}
		return fmt.Sprintf("error %s %d %s\n", kind, l.Errno, strings.ReplaceAll(l.Msg, "\n", " "))
	}
	return fmt.Sprintf("unknown %d\n", int(l.Kind))
}

// Parse parses one line (with or without its newline). A line that is none of the above is an
// error quoting it.
func Parse(line string) (Line, error) {
	text := strings.TrimSuffix(line, "\n")
	bad := func() (Line, error) { return Line{}, fmt.Errorf("the helper said %q", text) }
	word, rest, _ := strings.Cut(text, " ")
	switch word {
	case "ready", "exec":
		if rest != "" || strings.Contains(text, " ") {
			return bad()
		}
		if word == "ready" {
			return Line{Kind: Ready}, nil
		}
		return Line{Kind: Exec}, nil
	case "started":
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 {
			return bad()
		}
		return Line{Kind: Started, PID: pid}, nil
	case "exit":
		f := strings.Fields(rest)
		l := Line{Kind: Exit}
		if len(f) == 3 && f[2] == "last" {
			l.Last, f = true, f[:2]
		}
		if len(f) != 2 {
			return bad()
		}
		var err1, err2 error
		l.Code, err1 = strconv.Atoi(f[0])
		l.Signal, err2 = strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return bad()
		}
		return l, nil
	case "error":
		f := strings.SplitN(rest, " ", 3)
		if len(f) != 3 || (f[0] != "setup" && f[0] != "exec") {
			return bad()
		}
		errno, err := strconv.Atoi(f[1])
		if err != nil {
			return bad()
		}
		return Line{Kind: Error, Setup: f[0] == "setup", Errno: errno, Msg: f[2]}, nil
	}
	return bad()
}
