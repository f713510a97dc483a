// Package bus is the central topic bus of astrid-host (docs/architecture.md#the-bus):
// subscriptions with bounded per-subscription queues, delivery by the one matcher of package
// bus/topics, the IpcMessage JSON that guests see, and the conversion of a guest's payload into
// it.
//
// What a guest may publish or subscribe to (topic rules, ACLs, quota, the JSON a payload must
// be) is not decided here: package bus/guard owns those rules, and both the shim and the host
// call it. Publish and Subscribe validate nothing; the host checks first.
//
// # Delivery
//
// A [Bus] keeps its subscriptions in an index over pattern segments (index.go, [topics.SplitPattern]),
// so a publish visits only the index nodes that can match its topic. Each
// [Subscription] has its own bounded queue; a full queue evicts its oldest
// message and counts it as lagged, exactly. Draining never discards. For
// every subscription, Delivered + Lagged + Queued == Matched at all times
// ([Subscription.Stats]).
package bus
