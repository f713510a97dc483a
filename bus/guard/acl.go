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

// checkPublishACL applies a capsule's ipc_publish ACL to the topic name: an empty ACL denies everything;
// otherwise some entry must match it (topics.Match).
func checkPublishACL(capsuleID, name string, acl []string) error {
	if len(acl) == 0 {
		return fmt.Errorf("Capsule '%s' has no ipc_publish declarations — publishing is denied. Add ipc_publish patterns to Capsule.toml [capabilities]", capsuleID)
	}
	for _, p := range acl {
		if topics.Match(p, name) {
			return nil
		}
	}
	return fmt.Errorf("Capsule '%s' is not allowed to publish to topic '%s' — declared ipc_publish patterns: %s", capsuleID, name, debugList(acl))
}

// checkSubscribeACL applies a capsule's ipc_subscribe ACL to a subscription pattern: an empty
// ACL denies everything; otherwise some entry must cover the pattern (topics.Covers), so a wildcard subscription
// needs an ACL entry at least as wide.
func checkSubscribeACL(capsuleID, pattern string, acl []string) error {
	if len(acl) == 0 {
		return fmt.Errorf("Capsule '%s' has no ipc_subscribe declarations - subscribing is denied. Add ipc_subscribe patterns to Capsule.toml [capabilities]", capsuleID)
	}
	for _, a := range acl {
		if topics.Covers(a, pattern) {
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
