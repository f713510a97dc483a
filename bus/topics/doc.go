// Package topics holds the topic rules of the bus: what a topic and a topic pattern are, the
// limits on the ones guests use, and the one matcher used for delivery and for ACLs. It is
// apart from the delivery engine (package bus) so that the shim, which checks a guest's topics
// exactly as the host does (package bus/guard), links the rules without the engine; host/manifest
// checks the topics of a Capsule.toml with them too.
//
// # Topics
//
// A topic is a string of dot-separated segments, such as "user.v1.prompt".
// No segment may be empty: "", ".", ".a", "a." and "a..b" are not topics.
// Topics that guests publish, and patterns they subscribe to, are at most
// [MaxTopicBytes] bytes of UTF-8 and at most [MaxGuestSegments] segments
// ([CheckPublishTopic], [CheckSubscribePattern]). The host may publish deeper
// topics of its own, up to [MaxDepth] segments; a deeper topic matches
// nothing. There is no character set: a segment is any non-empty string
// without a dot, and a topic may even contain a literal "*" segment.
//
// # The matcher
//
// [Match] is the only matcher. Delivery to subscriptions, publish ACLs and
// (through [Covers]) subscribe ACLs all use it, so a capsule can never
// receive a topic that its ACL does not allow. Match(pattern, topic) is true
// iff all of these hold:
//
//  1. neither pattern nor topic has an empty segment;
//  2. topic has at most [MaxDepth] (20) segments;
//  3. if the pattern's LAST segment is "*": the topic has at least as many
//     segments as the pattern, and each segment of the pattern before the
//     last equals the topic's segment at the same position or is "*"; the
//     trailing "*" then matches the one or more segments that remain;
//  4. otherwise the pattern and the topic have the same number of segments,
//     and each segment of the pattern equals the topic's or is "*" (one
//     segment).
//
// So "a.*" matches "a.b" and "a.b.c" but not "a"; "a.*.c" matches "a.b.c"
// only; and "*" alone matches every topic. No other wildcard exists: "a*"
// is a literal segment.
//
// This differs from upstream astrid 0.5, which had two matchers: the
// "strict" one (equal segment counts, "*" always one segment) for ACLs, and
// the bus one (trailing ".*" one-or-more) for delivery. It also differs from
// upstream's bus matcher for a bare "*" pattern, which upstream treats as one
// segment only because its test is a suffix test for ".*"; here the rule is
// about the last segment, whatever the pattern's length.
//
// [Covers](acl, pattern) answers the subscribe-ACL question: it is true iff
// every topic that pattern matches is matched by acl. It compares the two
// patterns segment by segment (see its doc comment), never by enumerating
// topics.
//
// # Across hosts
//
// On a bus shared by several hosts over NATS (package bus/cluster), a topic is published on the
// subject [TopicSubject] gives and a pattern subscribed with [PatternSubject]'s:
//
//   - every subject begins with [SubjectPrefix] ("astrid.bus."), so other NATS traffic can
//     share the server;
//   - a segment of only ASCII letters, digits, '_' and '-' is its own token; any other segment
//     (a literal "*" or ">", a space, a '~', non-ASCII) is "~" and the lower-case hex of its
//     bytes, so NATS never reads a topic's segment as a wildcard and [SubjectTopic] reverses it;
//   - a pattern's "*" before its last segment is NATS's "*" (exactly one token), and its trailing
//     "*" is NATS's ">" (one or more tokens), as rule 3 above.
//
// NATS's matching of the mapped subjects then accepts every pair Match accepts, and more only
// past MaxDepth; the receiving host checks each message with Match again, so the two together
// are exactly Match (subject_test.go checks it with tables, properties and a fuzz target).
package topics
