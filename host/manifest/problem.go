package manifest

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one finding about a manifest: an error that makes it invalid or
// a warning about something that is ignored. It names the file, the line (0
// if unknown) and the dotted key (for example "package.version",
// "component[0].file" or "limits.memory"), and its Message says what is wrong
// and what would be valid, so that a user can fix the manifest without
// reading the source.
type Problem struct {
	File    string // the manifest (or .wasm) file the problem is in
	Line    int    // 1-based line, 0 when unknown
	Key     string // dotted key path, "" when the problem is about the whole file
	Message string // what is wrong and what would be valid
}

// String formats the problem as "file:line: key: message", leaving out the
// line when it is 0, the key when it is "" and the file when it is "".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Errors is the list of problems that make a manifest invalid. It implements
// error so that Parse, Load and ForWasm can report every problem at once;
// use errors.As to get at the individual problems.
type Errors []Problem

// Error returns all problems, one per line.
func (e Errors) Error() string {
	if len(e) == 0 {
		return "manifest: no problems"
	}
	var b strings.Builder
	for i, p := range e {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// sortProblems orders problems by line, keeping the order in which they were
// found for problems on the same line. Problems without a line (0) come
// first: they are about the file as a whole or about a missing section.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
}
