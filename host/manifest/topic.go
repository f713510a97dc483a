package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// maxTopicLen is the longest topic or topic pattern, in bytes, that a
// capsule may publish, subscribe to or declare (the upstream guest limit).
const maxTopicLen = 256

// errEmptySegments is the upstream wording for a topic with an empty
// segment, kept so that messages read the same as upstream's.
var errEmptySegments = errors.New("contains empty segments (consecutive dots, leading/trailing dots, or is empty)")

// checkTopicSegments reports whether topic, a topic or a topic pattern, has
// valid segments: it is not empty, no dot-separated segment is empty (no
// leading, trailing or consecutive dots) and it is at most maxTopicLen
// bytes long. It says nothing about wildcards or characters.
//
// The error completes a sentence that starts with the topic, e.g.
// `ipc_publish pattern "a..b" ` + err.Error().
//
// This is the one place the manifest checks topic shape, so that the bus
// package can take it over and the manifest and the bus never disagree.
func checkTopicSegments(topic string) error {
	if len(topic) > maxTopicLen {
		return fmt.Errorf("is %d bytes long; topics are limited to %d bytes", len(topic), maxTopicLen)
	}
	if topic == "" || topic[0] == '.' || topic[len(topic)-1] == '.' || strings.Contains(topic, "..") {
		return errEmptySegments
	}
	return nil
}
