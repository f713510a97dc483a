//go:build wasip1

// Command session is a Go port of unicity-astrid/capsule-session, the conversation session
// store of Astrid OS (astrid-sdk 0.5 era): a dumb, trustworthy store of conversation history
// in the capsule's KV store. Messages go in as they are and come out as they went in.
//
// Sessions form a linked list through parent_session_id: clearing a session starts a new one
// that points back to it, so history is never silently lost.
package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"

	astrid "github.com/astrid-go/astrid/sdk/go"
	"github.com/astrid-go/astrid/sdk/go/intercept"
)

func main() {}

const (
	// sessionKeyPrefix starts every session's KV key: session.data.{session_id}.
	sessionKeyPrefix = "session.data"
	// defaultSessionID is the session of requests that name none.
	defaultSessionID = "default"
	// schemaVersion is the current version of sessionData.
	schemaVersion = 1
)

func init() {
	intercept.Handle("handle_append", handleAppend)
	intercept.Handle("handle_get_messages", handleGetMessages)
	intercept.Handle("handle_clear", handleClear)
}

// message is one conversation message: upstream's llm::Message, {"role","content"}. The
// content is kept as the JSON it arrived as.
type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// UnmarshalJSON checks what upstream's Message type checks: a known role and some content.
func (m *message) UnmarshalJSON(b []byte) error {
	type plain message
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	switch p.Role {
	case "system", "user", "assistant", "tool":
	default:
		return fmt.Errorf("unknown variant %q, expected one of system, user, assistant, tool", p.Role)
	}
	if len(p.Content) == 0 || string(p.Content) == "null" {
		return fmt.Errorf("missing field `content`")
	}
	*m = message(p)
	return nil
}

// sessionData is what the store keeps for one session, schema-versioned.
type sessionData struct {
	SchemaVersion   uint32    `json:"schema_version"`
	ParentSessionID *string   `json:"parent_session_id"`
	Messages        []message `json:"messages"`
}

// newSession returns an empty session of the current schema.
func newSession() sessionData {
	return sessionData{SchemaVersion: schemaVersion, Messages: []message{}}
}

// sessionKey is the KV key of a session's data.
func sessionKey(id string) string { return sessionKeyPrefix + "." + id }

// migrate stamps version-0 data to the current version (needsSave) and refuses unknown
// versions (ok false: the caller starts fresh, failing secure).
func (d sessionData) migrate() (sessionData, bool, bool) {
	switch d.SchemaVersion {
	case 0:
		d.SchemaVersion = schemaVersion
		return d, true, true
	case schemaVersion:
		return d, false, true
	}
	return newSession(), false, false
}

// loadSession loads a session from the KV store, migrating it; a missing, unreadable or
// unknown-version session starts fresh (logged).
func loadSession(id string) sessionData {
	var d sessionData
	if err := astrid.KVGetJSON(sessionKey(id), &d); err != nil {
		if err != astrid.ErrKVNotSet {
			astrid.AstridLog("error", "Failed to load session data, starting fresh: "+err.Error())
		}
		return newSession()
	}
	m, needsSave, ok := d.migrate()
	if !ok {
		astrid.AstridLog("error", fmt.Sprintf("Session '%s' has unknown schema version (expected %d), starting fresh", id, schemaVersion))
		return m
	}
	if needsSave {
		if err := m.save(id); err != nil {
			astrid.AstridLog("warn", "Failed to re-save session after migration: "+err.Error())
		}
	}
	if m.Messages == nil {
		m.Messages = []message{}
	}
	return m
}

// save stores the session in the KV store.
func (d sessionData) save(id string) error { return astrid.KVSetJSON(sessionKey(id), d) }

// request is the payload of the three events.
type request struct {
	SessionID        string          `json:"session_id"`
	CorrelationID    *string         `json:"correlation_id"`
	Messages         json.RawMessage `json:"messages"`
	AppendBeforeRead json.RawMessage `json:"append_before_read"`
}

// decodeRequest decodes an event's payload, with the default session id.
func decodeRequest(ev astrid.HookEvent) (request, error) {
	var r request
	if err := ev.Decode(&r); err != nil {
		return r, err
	}
	if r.SessionID == "" {
		r.SessionID = defaultSessionID
	}
	return r, nil
}

// decodeMessages decodes a list of messages; absent or null is none.
func decodeMessages(what string, raw json.RawMessage) ([]message, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var ms []message
	if err := json.Unmarshal(raw, &ms); err != nil {
		return nil, fmt.Errorf("Failed to parse %s: %w", what, err)
	}
	return ms, nil
}

// correlationID returns the request's correlation_id, which becomes one segment of the reply
// topic: it must be non-empty and have no dots.
func (r request) correlationID(name string) (string, error) {
	if r.CorrelationID == nil || *r.CorrelationID == "" || strings.Contains(*r.CorrelationID, ".") {
		return "", fmt.Errorf("%s request missing or invalid correlation_id (must be non-empty, no dots)", name)
	}
	return *r.CorrelationID, nil
}

// handleAppend appends messages to a session; no reply.
func handleAppend(ev astrid.HookEvent) (astrid.Verdict, error) {
	r, err := decodeRequest(ev)
	if err != nil {
		return astrid.Verdict{}, err
	}
	ms, err := decodeMessages("messages", r.Messages)
	if err != nil || len(ms) == 0 {
		return astrid.Verdict{}, err
	}
	d := loadSession(r.SessionID)
	d.Messages = append(d.Messages, ms...)
	return astrid.Verdict{}, d.save(r.SessionID)
}

// handleGetMessages replies with a session's history on
// session.v1.response.get_messages.{correlation_id}, after appending append_before_read.
func handleGetMessages(ev astrid.HookEvent) (astrid.Verdict, error) {
	r, err := decodeRequest(ev)
	if err != nil {
		return astrid.Verdict{}, err
	}
	cid, err := r.correlationID("get_messages")
	if err != nil {
		return astrid.Verdict{}, err
	}
	d := loadSession(r.SessionID)
	if r.AppendBeforeRead != nil {
		ms, err := decodeMessages("append_before_read", r.AppendBeforeRead)
		if err != nil {
			return astrid.Verdict{}, err
		}
		if len(ms) > 0 {
			d.Messages = append(d.Messages, ms...)
			if err := d.save(r.SessionID); err != nil {
				return astrid.Verdict{}, err
			}
		}
	}
	return astrid.Verdict{}, astrid.Publish("session.v1.response.get_messages."+cid, map[string]any{
		"correlation_id": cid,
		"messages":       d.Messages,
	})
}

// handleClear starts a new session whose parent is the old one (left intact) and replies with
// both ids on session.v1.response.clear.{correlation_id}.
func handleClear(ev astrid.HookEvent) (astrid.Verdict, error) {
	r, err := decodeRequest(ev)
	if err != nil {
		return astrid.Verdict{}, err
	}
	cid, err := r.correlationID("clear")
	if err != nil {
		return astrid.Verdict{}, err
	}
	newID := newUUID()
	old := r.SessionID
	d := newSession()
	d.ParentSessionID = &old
	if err := d.save(newID); err != nil {
		return astrid.Verdict{}, err
	}
	astrid.AstridLog("info", fmt.Sprintf("Session cleared: '%s' -> '%s' (old session preserved)", old, newID))
	return astrid.Verdict{}, astrid.Publish("session.v1.response.clear."+cid, map[string]any{
		"correlation_id": cid,
		"new_session_id": newID,
		"old_session_id": old,
	})
}

// newUUID returns a random (version 4) UUID, as upstream's Uuid::new_v4.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
