package astrid

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Approval: asking a human to approve a sensitive action (astrid_request_approval).
//
// RequestApproval blocks the capsule until an answer comes: the host first looks for an
// allowance an earlier answer left for this capsule (approve_session: until the host stops;
// approve_always: kept across restarts), which answers at once with the decision "allowance";
// otherwise it publishes the request on astrid.v1.approval, where a frontend capsule or the
// operator (`astrid-host approve REQUEST_ID DECISION`, with the REQUEST_ID `astrid-host run`
// logs) answers it. With no answer within 60 s, and when the capsule unloads meanwhile, the
// request is denied. An allowance for action covers later requests whose resource is action, or
// starts with action and a space, and contains no shell operator (; && || | $( ` > < or a
// newline) and no ".." path component.

// MaxApprovalActionChars is the longest action RequestApproval sends: 256 characters (the host
// traps the call on a longer one, as upstream).
const MaxApprovalActionChars = 256

// Decisions RequestApproval may report.
const (
	ApprovalApprove        = "approve"         // approved, this once
	ApprovalApproveSession = "approve_session" // approved, and an allowance until the host stops
	ApprovalApproveAlways  = "approve_always"  // approved, and an allowance kept across restarts
	ApprovalDeny           = "deny"            // denied, timed out, or the capsule is unloading
	ApprovalAllowance      = "allowance"       // approved by an earlier answer's allowance
)

// ApprovalResult is the answer to an approval request.
type ApprovalResult struct {
	// Approved is whether the action may go ahead.
	Approved bool `json:"approved"`
	// Decision is how it was decided: one of the Approval* constants, or whatever other
	// decision the answer carried (which does not approve).
	Decision string `json:"decision"`
}

// RequestApproval asks for approval of action (a short name such as "git push") on resource
// (the full command or target, such as "git push origin main"), at riskLevel ("low", "medium",
// "high" or "critical"), and waits for the answer. The host trims each field, removes control
// characters, and cuts resource to 1024 and riskLevel to 64 characters. RequestApproval returns
// an error, without calling the host, for an action over MaxApprovalActionChars characters.
func RequestApproval(action, resource, riskLevel string) (ApprovalResult, error) {
	if n := utf8.RuneCountInString(action); n > MaxApprovalActionChars {
		return ApprovalResult{}, fmt.Errorf("astrid: RequestApproval: the action is %d characters, over the host's limit of %d", n, MaxApprovalActionChars)
	}
	req, err := json.Marshal(map[string]string{"action": action, "resource": resource, "risk_level": riskLevel})
	if err != nil {
		return ApprovalResult{}, err
	}
	var res ApprovalResult
	if err := decodeResult("astrid_request_approval", callHost(hostRequestApproval, req), &res); err != nil {
		return ApprovalResult{}, err
	}
	return res, nil
}
