// Package approval holds the rules of capsule approval requests (astrid_request_approval), as
// upstream's astrid-capsule 0.5 host/approval.rs and astrid-approval's allowances have them: how
// a guest's request is checked and sanitised, which decisions approve, and which allowances
// answer a later request without asking anyone (Allowances).
package approval

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a request's fields, in characters (upstream's MAX_ACTION_LEN, MAX_RESOURCE_LEN,
// MAX_RISK_LEVEL_LEN). An action longer than MaxActionChars is refused; the others are cut.
const (
	MaxActionChars    = 256
	MaxResourceChars  = 1024
	MaxRiskLevelChars = 64
)

// Decisions an answer may carry. Any other decision denies.
const (
	DecisionApprove        = "approve"
	DecisionApproveSession = "approve_session"
	DecisionApproveAlways  = "approve_always"
	DecisionDeny           = "deny"
	// DecisionAllowance is the decision of a request an allowance answered.
	DecisionAllowance = "allowance"
)

// Decisions are the decisions an operator may give (astrid-host approve), in the order they are
// listed to the operator.
var Decisions = []string{DecisionApprove, DecisionDeny, DecisionApproveSession, DecisionApproveAlways}

// Approves reports whether decision approves the request (upstream: approve, approve_session
// and approve_always do).
func Approves(decision string) bool {
	switch decision {
	case DecisionApprove, DecisionApproveSession, DecisionApproveAlways:
		return true
	}
	return false
}

// Request is a guest's approval request, sanitised: what it wants to do (action, e.g. "git
// push"), on what (resource, e.g. "git push origin main") and how risky it says it is.
type Request struct {
	Action    string
	Resource  string
	RiskLevel string
}

// Sanitize checks and cleans a guest's request as upstream does: an action of more than
// MaxActionChars characters is refused with upstream's text; then each field is trimmed, loses
// its control characters and is cut to its limit. changed names the fields that lost more than
// surrounding white space (upstream logs a warning for each).
func Sanitize(action, resource, riskLevel string) (r Request, changed []string, err error) {
	if n := utf8.RuneCountInString(action); n > MaxActionChars {
		return Request{}, nil, fmt.Errorf("approval request action exceeds maximum length (%d > %d)", n, MaxActionChars)
	}
	fields := []struct {
		name  string
		value string
		max   int
		out   *string
	}{
		{"action", action, MaxActionChars, &r.Action},
		{"resource", resource, MaxResourceChars, &r.Resource},
		{"risk_level", riskLevel, MaxRiskLevelChars, &r.RiskLevel},
	}
	for _, f := range fields {
		trimmed := strings.TrimFunc(f.value, unicode.IsSpace)
		*f.out = SanitizeField(f.value, f.max)
		if len(*f.out) != len(trimmed) {
			changed = append(changed, f.name)
		}
	}
	return r, changed, nil
}

// SanitizeField is upstream's sanitisation of a guest's display field: trimmed of white space,
// without control characters, at most max characters. Bytes that are not UTF-8 become U+FFFD
// (upstream's strings are UTF-8 by then).
func SanitizeField(s string, max int) string {
	s = strings.TrimFunc(strings.ToValidUTF8(s, "\uFFFD"), unicode.IsSpace)
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			break
		}
		if unicode.IsControl(r) {
			continue
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
