// Package cluster carries a bus's guest traffic between hosts over NATS
// (docs/architecture.md#the-bus-across-hosts): Link implements bus.Link on one NATS connection
// per host, and Server is the NATS server astrid-host run --bus-listen embeds.
//
// Authority stays local: the bus hands the link only messages its host has checked, and the
// link delivers a message from NATS only to the local subscriptions of the pattern it arrived
// for, which the bus checks with topics.Match again. Subjects are mapped by package bus/topics
// (TopicSubject, PatternSubject). Every message lost between hosts is counted, exactly, in the
// lagged count of the subscriptions it was for (sequence.go); a publish the link cannot take is
// refused (Forward).
package cluster
