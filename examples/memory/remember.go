//go:build wasip1

package main

// memory.v1.remember: our addition to the port (upstream's capsule-memory 0.5 only reads the
// memory files). A request appends one dated line to the personal or project memory file,
// which the next before_build injects, and the capsule keeps in its KV store, per principal, a
// small index of what that principal remembered: how many lines, when last, and the hashes of
// the last maxRecent lines, so that a retried request does not write the same line twice.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	astrid "github.com/astrid-go/astrid/sdk/go"
	"github.com/astrid-go/astrid/sdk/go/intercept"
)

const (
	// maxRememberBytes caps the text of one remembered line (after its whitespace is collapsed).
	maxRememberBytes = 2048
	// maxRecent is how many of a principal's last remembered lines the index keeps hashes of.
	maxRecent = 64
	// indexKey is the KV key of the index; the host keeps one KV namespace per principal.
	indexKey = "memory.index"
	// indexSchemaVersion is the current version of memoryIndex.
	indexSchemaVersion = 1
	// responsePrefix starts every reply topic: memory.v1.response.{one segment}, which the
	// manifest's ipc_publish entry allows.
	responsePrefix = "memory.v1.response."
	// maxTopicBytes caps a response_topic.
	maxTopicBytes = 256
)

func init() {
	intercept.Handle("on_remember", onRemember)
}

// rememberRequest is the payload of memory.v1.remember.
type rememberRequest struct {
	// Text is what to remember; its runs of whitespace (newlines included) become one space.
	Text string `json:"text"`
	// Scope is "personal" (home://memory.md, the default) or "project" (the project's memory.md).
	Scope string `json:"scope"`
	// ResponseTopic, when set, receives the reply: memory.v1.response.{segment}.
	ResponseTopic string `json:"response_topic"`
}

// memoryIndex is what the KV store keeps for one principal, schema-versioned.
type memoryIndex struct {
	SchemaVersion int `json:"schema_version"`
	// Count is how many lines the principal has remembered, ever.
	Count uint64 `json:"count"`
	// LastMS is when the last one was remembered (Unix milliseconds).
	LastMS uint64 `json:"last_ms"`
	// Recent are the last lines remembered, oldest first, at most maxRecent.
	Recent []indexEntry `json:"recent"`
}

// indexEntry is one remembered line in the index.
type indexEntry struct {
	Hash  string `json:"hash"` // entryHash of the scope and text
	Scope string `json:"scope"`
	AtMS  uint64 `json:"at_ms"`
}

// onRemember appends the request's text as "- YYYY-MM-DD: text" to the scope's memory file and
// records it in the principal's index; a line this principal remembered recently that is still
// in the file is not written again (status "duplicate"). With a response_topic it replies
// {"status": "remembered"|"duplicate"|"error", ...}; a refused request changes nothing.
func onRemember(ev astrid.HookEvent) (astrid.Verdict, error) {
	var req rememberRequest
	if err := ev.Decode(&req); err != nil {
		return astrid.Verdict{}, err
	}
	if err := checkResponseTopic(req.ResponseTopic); err != nil {
		return astrid.Verdict{}, err
	}
	reply, err := remember(req)
	if err != nil {
		reply = map[string]any{"status": "error", "error": err.Error()}
	}
	if req.ResponseTopic != "" {
		if perr := astrid.Publish(req.ResponseTopic, reply); perr != nil {
			return astrid.Verdict{}, errors.Join(err, perr)
		}
	}
	return astrid.Continue(nil), err
}

// remember does the work of onRemember and returns the reply.
func remember(req rememberRequest) (map[string]any, error) {
	scope, file, err := scopeFile(req.Scope)
	if err != nil {
		return nil, err
	}
	text, err := normalizeText(req.Text)
	if err != nil {
		return nil, err
	}
	content, err := readForAppend(file)
	if err != nil {
		return nil, err
	}
	idx := loadIndex()
	hash := entryHash(scope, text)
	if idx.has(hash) && hasEntry(content, text) {
		return map[string]any{"status": "duplicate", "scope": scope, "count": idx.Count, "last_ms": idx.LastMS}, nil
	}
	now, err := astrid.Now()
	if err != nil {
		return nil, err
	}
	line := "- " + now.UTC().Format("2006-01-02") + ": " + text + "\n"
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	content += line
	if len(content) > maxMemoryBytes {
		return nil, fmt.Errorf("%s memory is full: %s would be %d bytes, over the %d bytes injected into the prompt; edit it to make room", scope, file, len(content), maxMemoryBytes)
	}
	if scope == "project" {
		// The project folder may not exist yet (the home does: the host creates it).
		if err := astrid.Mkdir(projectMemoryDir()); err != nil {
			return nil, err
		}
	}
	if err := astrid.WriteFile(file, []byte(content)); err != nil {
		return nil, err
	}
	ms := uint64(now.UnixMilli())
	idx.add(indexEntry{Hash: hash, Scope: scope, AtMS: ms})
	if err := astrid.KVSetJSON(indexKey, idx); err != nil {
		return nil, fmt.Errorf("remembered in %s, but the index was not saved: %w", file, err)
	}
	return map[string]any{
		"status":  "remembered",
		"scope":   scope,
		"line":    strings.TrimSuffix(line, "\n"),
		"bytes":   len(content),
		"count":   idx.Count,
		"last_ms": idx.LastMS,
	}, nil
}

// checkResponseTopic allows "" (no reply) or memory.v1.response.{segment}, segment non-empty
// without dots, at most maxTopicBytes in all: the topics the manifest lets the capsule publish
// on. It is checked before anything is done, so a request that could not be answered does
// nothing.
func checkResponseTopic(topic string) error {
	if topic == "" {
		return nil
	}
	seg, ok := strings.CutPrefix(topic, responsePrefix)
	if !ok || seg == "" || strings.ContainsAny(seg, ".*>") || len(topic) > maxTopicBytes {
		return fmt.Errorf("memory.v1.remember: response_topic %.300q must be %s{segment} (a non-empty segment without dots or wildcards, at most %d bytes in all)", topic, responsePrefix, maxTopicBytes)
	}
	return nil
}

// scopeFile returns the scope ("personal" when empty) and its memory file.
func scopeFile(scope string) (string, string, error) {
	switch scope {
	case "", "personal":
		return "personal", "home://memory.md", nil
	case "project":
		return "project", projectMemoryPath(), nil
	}
	return "", "", fmt.Errorf("unknown scope %.100q: want \"personal\" or \"project\"", scope)
}

// normalizeText collapses the whitespace runs of text into single spaces and checks that the
// result is non-empty, at most maxRememberBytes, and free of control characters (it goes into
// the system prompt as one line).
func normalizeText(text string) (string, error) {
	if len(text) > 4*maxRememberBytes {
		return "", fmt.Errorf("text of %d bytes is over the limit of %d bytes", len(text), maxRememberBytes)
	}
	t := strings.Join(strings.Fields(text), " ")
	switch {
	case t == "":
		return "", errors.New("text is empty: nothing to remember")
	case len(t) > maxRememberBytes:
		return "", fmt.Errorf("text of %d bytes is over the limit of %d bytes", len(t), maxRememberBytes)
	case strings.ContainsFunc(t, unicode.IsControl):
		return "", errors.New("text has control characters: want printable text")
	}
	return t, nil
}

// readForAppend returns the content of a memory file to append to: "" when it does not exist.
// Unlike readMemory it refuses a file it cannot read or that is not UTF-8, which appending
// would otherwise replace.
func readForAppend(file string) (string, error) {
	ok, err := astrid.FileExists(file)
	if err != nil || !ok {
		return "", err
	}
	b, err := astrid.ReadFile(file)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s is not UTF-8: not appending to it", file)
	}
	return string(b), nil
}

// hasEntry reports whether content has a remembered line "- {date}: text".
func hasEntry(content, text string) bool {
	for line := range strings.Lines(content) {
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, "- "); ok {
			if _, t, ok := strings.Cut(rest, ": "); ok && t == text {
				return true
			}
		}
	}
	return false
}

// entryHash identifies a remembered line in the index: SHA-256 of scope and text, 128 bits in
// hex.
func entryHash(scope, text string) string {
	h := sha256.Sum256([]byte(scope + "\x00" + text))
	return hex.EncodeToString(h[:16])
}

// loadIndex loads the principal's index; a missing, unreadable or unknown-version one starts
// fresh (logged), and a list longer than maxRecent is cut to its newest entries.
func loadIndex() memoryIndex {
	var idx memoryIndex
	err := astrid.KVGetJSON(indexKey, &idx)
	switch {
	case errors.Is(err, astrid.ErrKVNotSet):
		return memoryIndex{SchemaVersion: indexSchemaVersion}
	case err != nil:
		astrid.AstridLog("warn", "Failed to load the memory index, starting fresh: "+err.Error())
		return memoryIndex{SchemaVersion: indexSchemaVersion}
	case idx.SchemaVersion != indexSchemaVersion:
		astrid.AstridLog("warn", fmt.Sprintf("Memory index has unknown schema version %d (expected %d), starting fresh", idx.SchemaVersion, indexSchemaVersion))
		return memoryIndex{SchemaVersion: indexSchemaVersion}
	}
	if len(idx.Recent) > maxRecent {
		idx.Recent = idx.Recent[len(idx.Recent)-maxRecent:]
	}
	return idx
}

// has reports whether hash is among the recent entries.
func (idx *memoryIndex) has(hash string) bool {
	for _, e := range idx.Recent {
		if e.Hash == hash {
			return true
		}
	}
	return false
}

// add records e: one more line, remembered at e.AtMS, its hash moved to the newest end, the
// oldest recent entry dropped past maxRecent.
func (idx *memoryIndex) add(e indexEntry) {
	idx.Count++
	idx.LastMS = e.AtMS
	kept := idx.Recent[:0]
	for _, r := range idx.Recent {
		if r.Hash != e.Hash {
			kept = append(kept, r)
		}
	}
	idx.Recent = append(kept, e)
	if len(idx.Recent) > maxRecent {
		idx.Recent = append(idx.Recent[:0], idx.Recent[len(idx.Recent)-maxRecent:]...)
	}
}
