// Package bus is the central topic bus of astrid-host: topics and patterns, the matcher used for
// both delivery and ACLs, subscriptions with bounded queues, and quotas (DESIGN.md §4).
//
// Today it holds the rule every topic obeys, which manifests are validated with; the bus itself
// comes with the IPC host functions.
package bus

import (
	"errors"
	"fmt"
	"strings"
)

// MaxTopicBytes is the longest topic or topic pattern, in bytes, that a
// capsule may publish, subscribe to or declare (the upstream guest limit).
const MaxTopicBytes = 256

// ErrEmptySegments is the upstream wording for a topic with an empty
// segment, kept so that messages read the same as upstream's.
var ErrEmptySegments = errors.New("contains empty segments (consecutive dots, leading/trailing dots, or is empty)")

// CheckSegments reports whether topic, a topic or a topic pattern, has
// valid segments: it is not empty, no dot-separated segment is empty (no
// leading, trailing or consecutive dots) and it is at most MaxTopicBytes
// bytes long. It says nothing about wildcards or characters.
//
// The error completes a sentence that starts with the topic, e.g.
// `ipc_publish pattern "a..b" ` + err.Error().
//
// Manifests are checked with this function too, so the manifest and the bus never disagree.
func CheckSegments(topic string) error {
	if len(topic) > MaxTopicBytes {
		return fmt.Errorf("is %d bytes long; topics are limited to %d bytes", len(topic), MaxTopicBytes)
	}
	if topic == "" || topic[0] == '.' || topic[len(topic)-1] == '.' || strings.Contains(topic, "..") {
		return ErrEmptySegments
	}
	return nil
}
