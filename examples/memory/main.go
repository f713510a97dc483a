//go:build wasip1

// Command memory is a Go port of unicity-astrid/capsule-memory, the cross-session memory
// capsule of Astrid OS (astrid-sdk 0.5 era). It intercepts
// prompt_builder.v1.hook.before_build and injects memory from two files into the system
// prompt:
//
//   - personal memory, home://memory.md: the user's preferences and long-term facts, always
//     injected;
//   - project memory, cwd://{cwd_dir}/memory.md: the project's context, when there is one.
//
// Missing, empty or unreadable files are skipped; each section is cut at 32 KiB on a UTF-8
// boundary. The result goes to the request's response_topic as
// {"appendSystemContext": "..."}.
//
// Our addition, not in upstream (remember.go): memory.v1.remember appends a dated line to one
// of the two files and keeps a per-principal index of what was remembered in the KV store.
package main

import (
	"fmt"
	"strings"
	"unicode/utf8"

	astrid "github.com/astrid-go/astrid/sdk/go"
	"github.com/astrid-go/astrid/sdk/go/intercept"
)

func main() {}

// maxMemoryBytes caps each memory section, so neither crowds out the other or the context.
const maxMemoryBytes = 32768

// defaultCwdDir is the project folder when the configuration does not name one.
const defaultCwdDir = ".astrid"

func init() {
	intercept.Handle("on_before_prompt_build", onBeforePromptBuild)
}

// onBeforePromptBuild answers a before_build hook with the memory sections, on the hook's
// response_topic; it publishes nothing when there is no memory.
func onBeforePromptBuild(ev astrid.HookEvent) (astrid.Verdict, error) {
	var payload map[string]any
	if err := ev.Decode(&payload); err != nil {
		return astrid.Verdict{}, err
	}
	topic, ok := payload["response_topic"].(string)
	if !ok {
		keys := make([]string, 0, len(payload))
		for k := range payload {
			keys = append(keys, k)
		}
		return astrid.Verdict{}, fmt.Errorf("missing response_topic in before_build payload. keys: %q", keys)
	}
	sections := buildSections([]memorySource{
		{"personal", readMemory("home://memory.md")},
		{"project", readMemory(projectMemoryPath())},
	})
	if sections == "" {
		return astrid.Continue(nil), nil
	}
	if err := astrid.Publish(topic, map[string]string{"appendSystemContext": sections}); err != nil {
		return astrid.Verdict{}, err
	}
	return astrid.Continue(nil), nil
}

// memorySource is one memory file's content ("" when absent) and its label.
type memorySource struct {
	label, content string
}

// buildSections renders the present sources as "# Memory (label)" sections, joined by a blank
// line; "" when none is present.
func buildSections(srcs []memorySource) string {
	var out []string
	for _, s := range srcs {
		if s.content == "" {
			continue
		}
		text, cut := truncate(s.content)
		section := "# Memory (" + s.label + ")\n\n" + text
		if cut {
			section += "\n\n[Memory truncated]"
		}
		out = append(out, section)
	}
	return strings.Join(out, "\n\n")
}

// projectMemoryPath is cwd://{cwd_dir}/memory.md.
func projectMemoryPath() string {
	return projectMemoryDir() + "/memory.md"
}

// projectMemoryDir is cwd://{cwd_dir}, the project folder.
func projectMemoryDir() string {
	dir := astrid.GetConfig("cwd_dir")
	if dir == "" {
		dir = defaultCwdDir
	}
	return "cwd://" + dir
}

// readMemory returns the UTF-8 content of the file at path, or "" when it is missing, empty,
// blank, unreadable or not UTF-8.
func readMemory(path string) string {
	b, err := astrid.ReadFile(path)
	if err != nil || !utf8.Valid(b) || strings.TrimSpace(string(b)) == "" {
		return ""
	}
	return string(b)
}

// truncate cuts content to maxMemoryBytes on a UTF-8 boundary and reports whether it did.
func truncate(content string) (string, bool) {
	if len(content) <= maxMemoryBytes {
		return content, false
	}
	n := maxMemoryBytes
	for n > 0 && !utf8.RuneStart(content[n]) {
		n--
	}
	return content[:n], true
}
