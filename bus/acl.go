package bus

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxSubscriptions is how many subscriptions one capsule instance may hold at once, its
// interceptor handles included: 128.
const MaxSubscriptions = 128

// Guest-facing errors shared by the shim (which checks first, for exact errors without a round
// trip) and the host (which checks again and decides). The texts are upstream's.
const (
	ErrTextSubscriptionLimit = "Subscription limit reached (128 max per plugin)"
	ErrTextHandleNotFound    = "Subscription handle not found"
	ErrTextInterceptorHandle = "Cannot unsubscribe a runtime-owned interceptor handle"
	ErrTextHandleCollision   = "Subscription handle ID collision due to wraparound"
)

// CheckPublishACL applies a capsule's ipc_publish ACL to a topic: an empty ACL denies everything;
// otherwise some entry must Match the topic.
func CheckPublishACL(capsuleID, topic string, acl []string) error {
	if len(acl) == 0 {
		return fmt.Errorf("Capsule '%s' has no ipc_publish declarations — publishing is denied. Add ipc_publish patterns to Capsule.toml [capabilities]", capsuleID)
	}
	for _, p := range acl {
		if Match(p, topic) {
			return nil
		}
	}
	return fmt.Errorf("Capsule '%s' is not allowed to publish to topic '%s' — declared ipc_publish patterns: %s", capsuleID, topic, debugList(acl))
}

// CheckSubscribeACL applies a capsule's ipc_subscribe ACL to a subscription pattern: an empty
// ACL denies everything; otherwise some entry must Cover the pattern, so a wildcard subscription
// needs an ACL entry at least as wide.
func CheckSubscribeACL(capsuleID, pattern string, acl []string) error {
	if len(acl) == 0 {
		return fmt.Errorf("Capsule '%s' has no ipc_subscribe declarations - subscribing is denied. Add ipc_subscribe patterns to Capsule.toml [capabilities]", capsuleID)
	}
	for _, a := range acl {
		if Covers(a, pattern) {
			return nil
		}
	}
	return fmt.Errorf("Capsule '%s' is not allowed to subscribe to topic '%s' - declared ipc_subscribe patterns: %s", capsuleID, pattern, debugList(acl))
}

// debugList renders a list as Rust's {:?} does, as upstream's messages show it: ["a", "b"].
func debugList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
