package bus

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicBytes is the longest topic or topic pattern, in bytes, that a
// capsule may publish, subscribe to or declare (the upstream guest limit).
const MaxTopicBytes = 256

// MaxGuestSegments is the deepest topic or pattern, in segments, that a
// guest may publish or subscribe to (upstream's limit of 8). The bus itself
// matches topics up to MaxDepth segments.
const MaxGuestSegments = 8

// ErrEmptySegments is the upstream wording for a topic with an empty
// segment, kept so that messages read the same as upstream's.
var ErrEmptySegments = errors.New("contains empty segments (consecutive dots, leading/trailing dots, or is empty)")

// The errors of CheckPublishTopic, with upstream 0.5's exact texts (the host
// returns them to the guest as the trap message).
var (
	ErrTopicTooLong         = errors.New("Topic exceeds maximum allowed length (256 bytes)")
	ErrTopicNotUTF8         = errors.New("Topic is not valid UTF-8")
	ErrTopicEmptySegments   = errors.New("Topic " + ErrEmptySegments.Error())
	ErrTopicTooManySegments = errors.New("Topic exceeds maximum allowed segments (8)")
)

// The errors of CheckSubscribePattern, with upstream 0.5's exact texts.
var (
	ErrPatternTooLong         = errors.New("Topic pattern exceeds maximum allowed length (256 bytes)")
	ErrPatternNotUTF8         = errors.New("Topic pattern is not valid UTF-8")
	ErrPatternEmptySegments   = errors.New("Topic pattern " + ErrEmptySegments.Error())
	ErrPatternTooManySegments = errors.New("Topic pattern exceeds maximum allowed segments (8)")
)

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
	if !validSegments(topic) {
		return ErrEmptySegments
	}
	return nil
}

// validSegments is upstream's has_valid_segments: s is not empty and has no
// empty dot-separated segment.
func validSegments(s string) bool {
	return s != "" && s[0] != '.' && s[len(s)-1] != '.' && !strings.Contains(s, "..")
}

// CheckPublishTopic checks a topic a guest asks to publish to, in upstream
// 0.5's order and with its texts: length (ErrTopicTooLong), UTF-8
// (ErrTopicNotUTF8), empty segments (ErrTopicEmptySegments), then at most
// MaxGuestSegments segments (ErrTopicTooManySegments).
//
// Upstream charges the rate limiter between the length check and the others
// (astrid_ipc_publish steps 1–5); a host that wants the same order calls
// RateLimiter.Charge after checking len(topic) <= MaxTopicBytes.
func CheckPublishTopic(topic string) error {
	return checkGuestTopic(topic, ErrTopicTooLong, ErrTopicNotUTF8, ErrTopicEmptySegments, ErrTopicTooManySegments)
}

// CheckSubscribePattern checks a pattern a guest asks to subscribe to, in
// upstream 0.5's order and with its texts: length (ErrPatternTooLong), UTF-8
// (ErrPatternNotUTF8), empty segments (ErrPatternEmptySegments), then at most
// MaxGuestSegments segments (ErrPatternTooManySegments).
//
// Upstream's "Wildcard `*` is only supported as the last segment" check is
// deliberately absent: "*" may be any segment of a subscription (docs/abi.md#topics-and-patterns),
// because the one matcher delivers "a.*.b" correctly.
func CheckSubscribePattern(p string) error {
	return checkGuestTopic(p, ErrPatternTooLong, ErrPatternNotUTF8, ErrPatternEmptySegments, ErrPatternTooManySegments)
}

// checkGuestTopic holds the checks that publish and subscribe share; only
// their texts differ.
func checkGuestTopic(s string, tooLong, notUTF8, empty, tooDeep error) error {
	switch {
	case len(s) > MaxTopicBytes:
		return tooLong
	case !utf8.ValidString(s):
		return notUTF8
	case !validSegments(s):
		return empty
	case strings.Count(s, ".")+1 > MaxGuestSegments:
		return tooDeep
	}
	return nil
}
