package host

import (
	"strings"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/host/internal/principal"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// callerContext is the context of one interceptor invocation: the bus message it handles
// (upstream's caller_context). It is set on the instance for exactly the duration of the
// invocation, which holds the instance's call slot (Instance.acquireCall), so every host request
// the shim makes meanwhile belongs to it: the shim runs one call at a time, and it sends a call's
// pipelined publishes before it answers the call.
type callerContext struct {
	// principal is the message's principal when it is a valid principal id, else "" (the
	// capsule's own principal applies).
	principal string
	// json is what astrid_get_caller returns: {"principal","source_id","timestamp"}.
	json []byte
}

// newCallerContext is the caller context of an invocation for message m.
func newCallerContext(m *bus.Message) *callerContext {
	c := &callerContext{json: callerJSON(m)}
	if principal.Valid(m.Principal) {
		c.principal = m.Principal
	}
	return c
}

// callerJSON is upstream's astrid_get_caller result for m: {"principal": <string or null>,
// "source_id": "<uuid>", "timestamp": "<RFC 3339>"}, keys in this (serde_json's sorted) order,
// the timestamp as chrono's to_rfc3339 writes it ("+00:00", not "Z").
func callerJSON(m *bus.Message) []byte {
	var principal *string
	if m.Principal != "" {
		principal = &m.Principal
	}
	src := m.SourceID
	if src == "" {
		src = bus.NilSourceID
	}
	ts := strings.TrimSuffix(string(bus.AppendTimestamp(nil, m.Timestamp)), "Z") + "+00:00"
	out, _ := serdejson.Marshal(struct { // a struct of strings always encodes
		Principal *string `json:"principal"`
		SourceID  string  `json:"source_id"`
		Timestamp string  `json:"timestamp"`
	}{principal, src, ts})
	return out
}

// effectivePrincipal is the principal the instance's host functions act for: during an
// interceptor invocation, the principal of the bus message it handles (its KV namespace, its
// home directory, the principal its publishes carry) when that is a valid principal id;
// otherwise the capsule's own.
func (i *Instance) effectivePrincipal() string {
	if c := i.caller.Load(); c != nil && c.principal != "" {
		return c.principal
	}
	return i.ipc.principal
}
