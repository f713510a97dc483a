package guard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/astrid-go/astrid/bus/topics"
)

// MaxSubscriptions is how many subscriptions one capsule instance may hold at once, its
// interceptor handles included: 128.
const MaxSubscriptions = 128

// The errors of the subscription checks, with upstream's texts.
var (
	// ErrSubscriptionLimit refuses a subscription past MaxSubscriptions.
	ErrSubscriptionLimit = errors.New("Subscription limit reached (128 max per plugin)")
	// ErrHandleNotFound refuses a handle the capsule instance does not hold.
	ErrHandleNotFound = errors.New("Subscription handle not found")
	// ErrInterceptorHandle refuses to unsubscribe an [[interceptor]]'s handle, which the runtime
	// owns.
	ErrInterceptorHandle = errors.New("Cannot unsubscribe a runtime-owned interceptor handle")
	// ErrHandleCollision refuses a new subscription whose handle, after the counter wrapped
	// around 2^64, is still live. Only the host, which numbers handles, can meet it.
	ErrHandleCollision = errors.New("Subscription handle ID collision due to wraparound")
)

// acl is one of a capsule's IPC ACLs: the manifest key, how an entry allows a request, and the
// words of upstream's refusals (which differ between the two ACLs down to the dash).
type acl struct {
	key    string // ipc_publish or ipc_subscribe
	verb   string // "publish to", "subscribe to"
	gerund string // "publishing", "subscribing"
	dash   string // "—" (publish) or "-" (subscribe)
	allows func(entry, name string) bool
}

// The two ACLs. A topic may be published if some ipc_publish entry matches it (topics.Match); a
// pattern may be subscribed to if some ipc_subscribe entry covers it (topics.Covers), so a
// wildcard subscription needs an entry at least as wide.
var (
	publishACL   = acl{key: "ipc_publish", verb: "publish to", gerund: "publishing", dash: "—", allows: topics.Match}
	subscribeACL = acl{key: "ipc_subscribe", verb: "subscribe to", gerund: "subscribing", dash: "-", allows: topics.Covers}
)

// check applies the capsule's entries to name, a topic or pattern: an empty ACL denies
// everything; otherwise some entry must allow it.
func (a acl) check(capsuleID, name string, entries []string) error {
	if len(entries) == 0 {
		return fmt.Errorf("Capsule '%s' has no %s declarations %s %s is denied. Add %s patterns to Capsule.toml [capabilities]", capsuleID, a.key, a.dash, a.gerund, a.key)
	}
	for _, e := range entries {
		if a.allows(e, name) {
			return nil
		}
	}
	return fmt.Errorf("Capsule '%s' is not allowed to %s topic '%s' %s declared %s patterns: %s", capsuleID, a.verb, name, a.dash, a.key, debugList(entries))
}

// debugList renders a list as Rust's {:?} does, as upstream's messages show it: ["a", "b"].
func debugList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
