package host

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/shared/pb"
)

// astrid_uplink_register and astrid_uplink_send, as upstream's uplink.rs: a capsule registers up
// to MaxUplinks uplinks (connections to a chat platform), then hands the host the messages its
// users send (inbound messages). Upstream queues them on a channel of 128 that its kernel never
// drains; here the host drains the queue onto the bus, as TopicUplinkInbound, so other capsules
// can act on them.

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_UPLINK_REGISTER] = astridUplinkRegister
	hostCallHandlers[pb.HostOp_HOST_OP_UPLINK_SEND] = astridUplinkSend
}

// Limits of the uplink functions, upstream's.
const (
	// MaxUplinks is how many uplinks one capsule may register (MAX_UPLINKS_PER_CAPSULE).
	MaxUplinks = 32
	// InboundQueueLen is the capacity of a capsule's inbound queue: a send to a full queue is
	// dropped and answered {"dropped": true, "ok": false}.
	InboundQueueLen = 128
	// maxUplinkIDBytes bounds the uplink_id astrid_uplink_send parses.
	maxUplinkIDBytes = 64
)

// TopicUplinkInbound is the topic of the inbound messages of every capsule's uplinks,
// published by the host (source_id the nil UUID) with a custom payload: upstream's
// InboundMessage and the capsule's id (InboundMessageJSON).
const TopicUplinkInbound = "astrid.v1.uplink.inbound"

// InboundMessageJSON is the data of a TopicUplinkInbound message: upstream's InboundMessage
// (uplink_id, platform, platform_user_id, content, context, thread_id, timestamp), and which
// capsule's uplink it came from.
type InboundMessageJSON struct {
	UplinkID       string  `json:"uplink_id"`
	Platform       string  `json:"platform"`
	PlatformUserID string  `json:"platform_user_id"`
	Content        string  `json:"content"`
	Context        any     `json:"context"`
	ThreadID       *string `json:"thread_id"`
	Timestamp      string  `json:"timestamp"`
	CapsuleID      string  `json:"capsule_id"`
}

// uplinkProfiles maps the profiles upstream accepts to the one it stores ("human" is chat).
var uplinkProfiles = map[string]string{"chat": "chat", "interactive": "interactive", "notify": "notify", "bridge": "bridge", "human": "chat"}

// uplink is one registered uplink.
type uplink struct {
	id                      uuid.UUID
	name, platform, profile string
}

// instanceUplinks is an instance's uplinks and, when its manifest declares [[uplink]], its
// inbound queue and the goroutine that publishes what it holds.
type instanceUplinks struct {
	mu      sync.Mutex
	list    []uplink
	queue   chan InboundMessageJSON // made on the first send
	stop    context.CancelFunc      // ends the drain
	stopped bool
}

// close ends the drain; queued messages are dropped, later sends find no queue.
func (u *instanceUplinks) close() {
	u.mu.Lock()
	u.stopped = true
	stop := u.stop
	u.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// astridUplinkRegister: astrid_uplink_register(name, platform, profile) → the new uplink's
// UUID. The platform is trimmed and lower-cased; the profile must be chat, interactive, notify,
// bridge or human (chat); at most MaxUplinks per capsule, and (name, platform) unique.
func astridUplinkRegister(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	name := rustLossy(args[0])
	platform := asciiLower(strings.TrimSpace(rustLossy(args[1])))
	word := strings.ToLower(rustLossy(args[2]))
	profile, ok := uplinkProfiles[word]
	if !ok {
		return nil, guestFailed("invalid uplink profile: %s (expected: chat, interactive, notify, bridge, human)", rustDebugString(word))
	}
	u := &s.inst.uplinks
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.list) >= MaxUplinks {
		return nil, guestFailed("capsule %s: uplink registration limit reached", s.inst.ID())
	}
	for _, l := range u.list {
		if l.name == name && l.platform == platform {
			return nil, guestFailed("capsule %s: duplicate uplink name and platform", s.inst.ID())
		}
	}
	l := uplink{id: uuid.New(), name: name, platform: platform, profile: profile}
	u.list = append(u.list, l)
	return []byte(l.id.String()), nil
}

// asciiLower lower-cases ASCII letters only (Rust's to_ascii_lowercase).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// astridUplinkSend: astrid_uplink_send(uplink_id, platform_user_id, content) → {"ok": true} once
// the message is queued for the bus, {"dropped": true, "ok": false} when the queue is full. A
// platform_user_id or content that is not UTF-8 becomes empty, as upstream.
func astridUplinkSend(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	rawID, userID, content := args[0], args[1], args[2]
	if !utf8.Valid(userID) {
		userID = nil
	}
	if !utf8.Valid(content) {
		content = nil
	}
	if len(rawID) > maxUplinkIDBytes {
		return nil, guestFailed("uplink_id too long")
	}
	idText := rustLossy(rawID)
	id, err := uuid.Parse(idText)
	if err != nil || !rustUUIDForm(idText) {
		return nil, guestFailed("invalid uplink_id: %s", rustUUIDError(idText))
	}
	u := &s.inst.uplinks
	u.mu.Lock()
	var platform string
	found := false
	for _, l := range u.list {
		if l.id == id {
			platform, found = l.platform, true
			break
		}
	}
	u.mu.Unlock()
	if !found {
		return nil, guestFailed("uplink %s not registered by capsule %s", id, s.inst.ID())
	}
	q := s.inst.inboundQueue()
	if q == nil {
		return nil, guestFailed("capsule %s has no inbound channel", s.inst.ID())
	}
	msg := InboundMessageJSON{UplinkID: id.String(), Platform: platform, PlatformUserID: string(userID), Content: string(content),
		Timestamp: string(bus.AppendTimestamp(nil, time.Now())), CapsuleID: s.inst.ID()}
	select {
	case q <- msg:
		return []byte(`{"ok":true}`), nil
	default:
		return []byte(`{"dropped":true,"ok":false}`), nil // serde_json::Value: sorted keys
	}
}

// inboundQueue returns the instance's inbound queue, starting its drain on first use; nil when
// the manifest declares no [[uplink]] (upstream gives such a capsule no channel) or the
// instance is stopping.
func (i *Instance) inboundQueue() chan<- InboundMessageJSON {
	if len(i.manifest.Uplinks) == 0 {
		return nil
	}
	u := &i.uplinks
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopped {
		return nil
	}
	if u.queue == nil {
		u.queue = make(chan InboundMessageJSON, InboundQueueLen)
		ctx, cancel := context.WithCancel(i.host.closing)
		u.stop = cancel
		q := u.queue
		i.host.background(func() { i.drainInbound(ctx, q) })
	}
	return u.queue
}

// drainInbound publishes the instance's inbound messages on the bus, in order, no faster than
// its [limits] ipc_bytes_per_sec (counting each message's JSON), so a capsule cannot put more on
// the bus through its uplinks than through its own publishes: a capsule that sends faster
// fills its queue, and its sends are dropped. It ends when the instance stops; what is still
// queued then is dropped.
func (i *Instance) drainInbound(ctx context.Context, q <-chan InboundMessageJSON) {
	p := newPacer(i.manifest.Limits.IPCBytesPerSec, time.Now)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q:
			data, err := bus.CustomPayload(m)
			if err != nil {
				i.log.Error("cannot encode an inbound message", "error", err)
				continue
			}
			if !p.wait(ctx, len(data)) {
				return
			}
			i.host.bus.Publish(bus.Message{Topic: TopicUplinkInbound, Payload: data, SourceID: hostSourceID})
		}
	}
}

// pacer spaces out work to rate bytes per second, with a burst of one second's worth.
type pacer struct {
	rate   float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newPacer(rate uint64, now func() time.Time) *pacer {
	r := float64(max(rate, 1))
	return &pacer{rate: r, tokens: r, last: now(), now: now}
}

// wait waits until n bytes may go (a message larger than the burst waits for a full burst and
// leaves a debt), false when ctx ended first.
func (p *pacer) wait(ctx context.Context, n int) bool {
	for {
		t := p.now()
		p.tokens = min(p.rate, p.tokens+t.Sub(p.last).Seconds()*p.rate)
		p.last = t
		need := min(float64(n), p.rate)
		if p.tokens >= need {
			p.tokens -= float64(n)
			return true
		}
		d := time.Duration((need - p.tokens) / p.rate * float64(time.Second))
		timer := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// rustUUIDForm reports whether s has one of the forms Rust's uuid parses: 32 hex digits,
// hyphenated (36), braced (38) or urn:uuid: (45). Go's parser accepts the same forms; this
// keeps the two in step should it accept more.
func rustUUIDForm(s string) bool {
	switch len(s) {
	case 32, 36:
		return true
	case 38:
		return s[0] == '{' && s[37] == '}'
	case 45:
		return strings.HasPrefix(s, "urn:uuid:")
	}
	return false
}

// rustUUIDError is the text of Rust's uuid parse error for s (uuid 1.x, InvalidUuid::into_err).
func rustUUIDError(s string) string {
	body, offset, simple := s, 0, true
	switch {
	case len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}':
		body, offset, simple = s[1:len(s)-1], 1, false
	case strings.HasPrefix(s, "urn:uuid:"):
		body, offset, simple = s[len("urn:uuid:"):], len("urn:uuid:"), false
	}
	hyphens := 0
	var bounds [4]int
	for idx, r := range body {
		switch {
		case r >= utf8.RuneSelf:
			return fmt.Sprintf("invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `%c` at %d", r, idx+offset+1)
		case r == '-':
			if hyphens < 4 {
				bounds[hyphens] = idx
			}
			hyphens++
		case !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'):
			return fmt.Sprintf("invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `%c` at %d", r, idx+offset+1)
		}
	}
	if hyphens == 0 && simple {
		return fmt.Sprintf("invalid length: expected length 32 for simple format, found %d", len(s))
	}
	if hyphens != 4 {
		return fmt.Sprintf("invalid group count: expected 5, found %d", hyphens+1)
	}
	starts := [5]int{0, 9, 14, 19, 24}
	expected := [5]int{8, 4, 4, 4, 12}
	for g := 0; g < 4; g++ {
		if bounds[g] != starts[g+1]-1 {
			return fmt.Sprintf("invalid group length in group %d: expected %d, found %d", g, expected[g], bounds[g]-starts[g])
		}
	}
	return fmt.Sprintf("invalid group length in group 4: expected 12, found %d", len(s)-starts[4])
}
