package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/topics"
	"github.com/astrid-go/astrid/shared/logtext"
)

// Defaults of Options.
const (
	// DefaultReconnectBufBytes is how many bytes of publishes a host buffers while it is
	// disconnected from NATS (nats.go's reconnect buffer); past it publishes are refused.
	DefaultReconnectBufBytes = 8 << 20
	// DefaultPendingMsgs is how many messages from NATS a host holds before it has handed them to
	// its bus; past it NATS drops them (a slow consumer), and the gap is counted as lagged.
	DefaultPendingMsgs = 65536
	// DefaultMarkInterval is how often a publisher sends its marks when it sent something since.
	DefaultMarkInterval = 250 * time.Millisecond
	// reconnectWait is the pause between reconnect attempts.
	reconnectWait = 250 * time.Millisecond
)

// Options configure a Link.
type Options struct {
	// URL is the NATS server (or a comma-separated list of a cluster's), e.g.
	// nats://user:password@host:4222; tls:// asks for TLS.
	URL string
	// Name names the connection in the server's monitoring (e.g. "astrid-host on HOST").
	Name string
	// CredsFile is a NATS credentials file (JWT and NKey seed), as `nats --creds`.
	CredsFile string
	// TLSCA, TLSCert and TLSKey are PEM files: the CA to verify the server with, and a client
	// certificate and its key.
	TLSCA, TLSCert, TLSKey string
	// ReconnectBufBytes: DefaultReconnectBufBytes when <= 0.
	ReconnectBufBytes int
	// PendingMsgs: DefaultPendingMsgs when <= 0.
	PendingMsgs int
	// MarkInterval: DefaultMarkInterval when <= 0.
	MarkInterval time.Duration
	// CheckPrincipal is the host's rule for principal ids; a message whose principal it refuses
	// is dropped.
	CheckPrincipal func(string) error
	// Logger gets connection changes and dropped messages; nil means none.
	Logger hclog.Logger

	// beforeReceive, if set (by tests), runs in the receive goroutine before it handles each
	// message from NATS, so a test can stall it.
	beforeReceive func()
}

// Link is a bus.Link over NATS: it forwards a bus's shared messages to the other hosts
// connected to the same NATS server or cluster, and delivers theirs. Create it with Connect.
type Link struct {
	b    *bus.Bus
	nc   *nats.Conn
	id   string // this link's origin id, random per Connect
	opts Options
	log  hclog.Logger
	ch   chan *nats.Msg // every subscription's messages, in the order they arrive

	pubMu sync.Mutex // orders forwards and hwm messages on the connection; guards out
	out   *outbox

	mu        sync.Mutex                    // guards the fields below
	subs      map[string]*nats.Subscription // local pattern -> its NATS subscription
	bySubject map[string]string             // NATS subscription subject -> local pattern
	bytes     int                           // sum of len(pattern) over subs
	in        *inbox
	wantMarks bool // ask the others for their marks at the next tick (we lost messages)

	stop chan struct{}
	wg   sync.WaitGroup
}

// Connect connects b to the NATS server at opts.URL and sets itself as b's link. It fails if the
// server cannot be reached; once connected, it reconnects for ever, resubscribing, and buffers
// publishes up to ReconnectBufBytes meanwhile.
func Connect(b *bus.Bus, opts Options) (*Link, error) {
	if opts.ReconnectBufBytes <= 0 {
		opts.ReconnectBufBytes = DefaultReconnectBufBytes
	}
	if opts.PendingMsgs <= 0 {
		opts.PendingMsgs = DefaultPendingMsgs
	}
	if opts.MarkInterval <= 0 {
		opts.MarkInterval = DefaultMarkInterval
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	var idb [16]byte
	rand.Read(idb[:])
	l := &Link{
		b: b, id: hex.EncodeToString(idb[:]), opts: opts, log: opts.Logger,
		ch:  make(chan *nats.Msg, opts.PendingMsgs),
		out: newOutbox(), subs: map[string]*nats.Subscription{}, bySubject: map[string]string{},
		in: newInbox(), stop: make(chan struct{}),
	}
	nopts := []nats.Option{
		nats.Name(opts.Name),
		nats.NoEcho(), // this host delivers its own messages itself
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectBufSize(opts.ReconnectBufBytes),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			l.log.Warn("bus: disconnected from NATS; reconnecting", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.log.Info("bus: reconnected to NATS", "server", nc.ConnectedUrlRedacted())
			l.announce() // the others may have missed our changes, and we theirs
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				// Counted as lagged once the next message or mark shows the gap; ask for marks.
				l.mu.Lock()
				l.wantMarks = true
				l.mu.Unlock()
				return
			}
			l.log.Warn("bus: NATS error", "error", err)
		}),
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.TLSCA != "" {
		nopts = append(nopts, nats.RootCAs(opts.TLSCA))
	}
	if opts.TLSCert != "" || opts.TLSKey != "" {
		if opts.TLSCert == "" || opts.TLSKey == "" {
			return nil, errors.New("a TLS client certificate needs both --bus-tls-cert and --bus-tls-key")
		}
		nopts = append(nopts, nats.ClientCert(opts.TLSCert, opts.TLSKey))
	}
	nc, err := nats.Connect(opts.URL, nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the bus at %s: %w", redact(opts.URL), err)
	}
	l.nc = nc
	if _, err := nc.ChanSubscribe(ControlSubject, l.ch); err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to %s: %w", ControlSubject, err)
	}
	l.wg.Add(2)
	go l.receive()
	go l.tick()
	b.SetLink(l)
	l.announce()
	if err := nc.Flush(); err != nil {
		l.Close()
		return nil, fmt.Errorf("bus at %s: %w", redact(opts.URL), err)
	}
	l.log.Info("bus: joined NATS", "server", nc.ConnectedUrlRedacted(), "host_id", l.id)
	return l, nil
}

// ID is this host's origin id on the bus (random per Connect).
func (l *Link) ID() string { return l.id }

// Close says goodbye to the other hosts, disconnects b from them and waits for the link's
// goroutines.
func (l *Link) Close() {
	l.b.SetLink(nil)
	l.sendControl(controlMsg{Type: ctlBye, Origin: l.id})
	l.nc.Flush()
	l.nc.Close()
	close(l.stop)
	l.wg.Wait()
}

// patterns returns the patterns this host subscribes to across hosts.
func (l *Link) patterns() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := make([]string, 0, len(l.subs))
	for p := range l.subs {
		set = append(set, p)
	}
	return set
}

// announce sends this host's full interest, its marks, and a hello that asks the others for
// theirs: at connect and at every reconnect.
func (l *Link) announce() {
	set := l.patterns()
	l.sendControl(controlMsg{Type: ctlInterest, Origin: l.id, Full: true, Set: set})
	l.sendMarks()
	l.sendControl(controlMsg{Type: ctlHello, Origin: l.id})
}

func (l *Link) sendControl(c controlMsg) {
	body, err := json.Marshal(c)
	if err == nil {
		err = l.nc.Publish(ControlSubject, body)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		l.log.Warn("bus: control message not sent", "type", c.Type, "error", err)
	}
}

// sendMarks sends every count (hwm), split into messages of about hwmChunkBytes.
func (l *Link) sendMarks() {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.sendMarksLocked(l.out.marks(), "")
	l.out.dirty = false
}

// sendMarksLocked sends ms in hwm messages, addressed to host for if it is not "". l.pubMu is
// held, so they take their place among the forwarded messages.
func (l *Link) sendMarksLocked(ms []mark, forHost string) {
	for len(ms) > 0 {
		n, size := 0, 0
		for n < len(ms) && (n == 0 || size < hwmChunkBytes) {
			size += len(ms[n].Pattern) + 48
			n++
		}
		l.sendControl(controlMsg{Type: ctlHWM, Origin: l.id, Marks: ms[:n], For: forHost})
		ms = ms[n:]
	}
}

// Forward implements bus.Link: it sends m to the hosts that subscribe to a pattern matching its
// topic (or to every host, past the bounds of what it counts). It refuses m when nats.go cannot
// take it: its reconnect buffer is full, the message is over the server's max_payload, or the
// link is closed.
func (l *Link) Forward(m *bus.Message) error {
	subject, ok := topics.TopicSubject(m.Topic)
	if !ok {
		return nil // matches nothing anywhere
	}
	var buf [4]mark
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	marks := l.out.match(m.Topic, buf[:0])
	if len(marks) == 0 && !l.out.overflow {
		return nil // no other host subscribes to it
	}
	body, err := encodeData(l.id, m, marks)
	if err == nil {
		err = l.nc.Publish(subject, body)
	}
	switch {
	case err == nil:
		l.out.commit(marks)
		return nil
	case lostInFlight(err):
		// nats.go took the message, then the connection broke under the write that carried it
		// (and the messages buffered with it): it is sent and lost on the way, like a message a
		// dying server held. Counting it lets the receivers see the gap and count it as lagged,
		// and the publisher, whose message was accepted, gets no error.
		l.out.commit(marks)
		l.log.Debug("bus: the connection to NATS broke under a write; the receivers count what it carried as lagged", "error", err)
		return nil
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		return fmt.Errorf("the bus is disconnected from NATS and its reconnect buffer (%d bytes) is full", l.opts.ReconnectBufBytes)
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("the message (%d bytes with its header) is larger than the NATS server's max_payload (%d bytes)", len(body), l.nc.MaxPayload())
	}
	return fmt.Errorf("the bus over NATS: %w", err)
}

// lostInFlight reports whether err, from nats.Conn.Publish, is the write of the client's buffer
// failing (the connection broke): nats.go had appended the message to that buffer, which it then
// drops (and buffers later publishes until it has reconnected). nats.go's own refusals
// (ErrReconnectBufExceeded, ErrMaxPayload, ErrConnectionClosed, ...) are returned before it
// takes the message and are not network errors.
func lostInFlight(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrShortWrite) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// Interest implements bus.Link: it subscribes to pattern's subject on NATS (add) or
// unsubscribes, and tells the other hosts at once, on the same connection, so they count it
// before anything this host publishes afterwards.
func (l *Link) Interest(pattern string, add bool) error {
	subject, ok := topics.PatternSubject(pattern)
	if !ok {
		return nil // matches nothing
	}
	l.mu.Lock()
	if add {
		if _, dup := l.subs[pattern]; dup {
			l.mu.Unlock()
			return nil
		}
		if len(l.subs) >= MaxPatterns || l.bytes+len(pattern) > MaxInterestBytes {
			l.mu.Unlock()
			return fmt.Errorf("this host subscribes to %d patterns (%d bytes) across hosts already; at most %d patterns and %d bytes are allowed",
				len(l.subs), l.bytes, MaxPatterns, MaxInterestBytes)
		}
		sub, err := l.nc.ChanSubscribe(subject, l.ch)
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("subscribe on NATS: %w", err)
		}
		l.subs[pattern] = sub
		l.bySubject[subject] = pattern
		l.bytes += len(pattern)
		l.mu.Unlock()
		l.sendControl(controlMsg{Type: ctlInterest, Origin: l.id, Add: []string{pattern}})
		return nil
	}
	sub := l.subs[pattern]
	if sub == nil {
		l.mu.Unlock()
		return nil
	}
	delete(l.subs, pattern)
	delete(l.bySubject, subject)
	l.bytes -= len(pattern)
	l.in.forgetPattern(pattern)
	sub.Unsubscribe()
	l.mu.Unlock()
	l.sendControl(controlMsg{Type: ctlInterest, Origin: l.id, Del: []string{pattern}})
	return nil
}

// receive hands what arrives from NATS to the bus, in arrival order, until Close.
func (l *Link) receive() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case msg := <-l.ch:
			if l.opts.beforeReceive != nil {
				l.opts.beforeReceive()
			}
			if msg.Subject == ControlSubject {
				l.control(msg.Data)
			} else {
				l.data(msg)
			}
		}
	}
}

// data delivers a message another host published to the local subscriptions of the pattern it
// arrived for, after counting the gap its mark shows.
func (l *Link) data(msg *nats.Msg) {
	l.mu.Lock()
	pattern, ok := l.bySubject[msg.Sub.Subject]
	if !ok {
		l.mu.Unlock()
		return // unsubscribed meanwhile
	}
	m, h, err := decodeData(msg.Subject, msg.Data, l.opts.CheckPrincipal)
	if err != nil {
		l.mu.Unlock()
		l.log.Warn("bus: message from NATS dropped", "subject", logtext.Escape(msg.Subject), "error", logtext.Escape(err.Error()))
		return
	}
	if h.Origin == l.id {
		l.mu.Unlock()
		return
	}
	fresh, lost := true, uint64(0)
	for _, mk := range h.Marks {
		if mk.Pattern == pattern {
			fresh, lost = l.in.advance(h.Origin, mk, true, false)
			break
		}
	}
	l.mu.Unlock()
	l.b.AddLag(pattern, lost)
	if fresh {
		l.b.DeliverRemote(pattern, m)
	}
}

// control handles a control message from another host.
func (l *Link) control(body []byte) {
	c, err := decodeControl(body)
	if err != nil {
		l.log.Warn("bus: control message from NATS dropped", "error", logtext.Escape(err.Error()))
		return
	}
	if c.Origin == l.id {
		return
	}
	switch c.Type {
	case ctlHello:
		l.announceTo(c.Origin)
	case ctlInterest:
		l.pubMu.Lock()
		closing, opening, known := l.out.update(c.Origin, c.Full, c.Set, c.Add, c.Del)
		l.sendMarksLocked(closing, "")
		l.sendMarksLocked(opening, c.Origin)
		l.pubMu.Unlock()
		if !known {
			l.log.Warn("bus: too many hosts; this host forwards every message and counts none for the newcomer", "max_hosts", MaxHosts, "host_id", logtext.Escape(c.Origin))
		}
		l.log.Debug("bus: interest of a host", "host_id", c.Origin, "full", c.Full, "set", len(c.Set), "add", len(c.Add), "del", len(c.Del))
	case ctlHWM:
		l.mu.Lock()
		type lag struct {
			p string
			n uint64
		}
		var lags []lag
		for _, mk := range c.Marks {
			if _, local := l.subs[mk.Pattern]; !local {
				continue
			}
			if _, lost := l.in.advance(c.Origin, mk, false, c.For == l.id); lost > 0 {
				lags = append(lags, lag{mk.Pattern, lost})
			}
		}
		l.mu.Unlock()
		for _, g := range lags {
			l.b.AddLag(g.p, g.n)
		}
	case ctlBye:
		l.pubMu.Lock()
		l.out.removeHost(c.Origin)
		l.pubMu.Unlock()
		l.mu.Lock()
		l.in.forgetOrigin(c.Origin)
		l.mu.Unlock()
	}
}

// announceTo answers the hello of host to: this host's full interest, and the marks of the
// patterns it knows to subscribe to, addressed to it (it is a member of their epochs).
func (l *Link) announceTo(to string) {
	set := l.patterns()
	l.sendControl(controlMsg{Type: ctlInterest, Origin: l.id, Full: true, Set: set})
	l.pubMu.Lock()
	l.sendMarksLocked(l.out.marksOf(to), to)
	l.pubMu.Unlock()
}

// tick sends the marks when they changed, and asks for the others' after NATS dropped messages.
func (l *Link) tick() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.MarkInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.pubMu.Lock()
		if l.out.dirty {
			l.sendMarksLocked(l.out.marks(), "")
			l.out.dirty = false
		}
		l.pubMu.Unlock()
		l.mu.Lock()
		ask := l.wantMarks
		l.wantMarks = false
		l.mu.Unlock()
		if ask {
			l.sendControl(controlMsg{Type: ctlHello, Origin: l.id})
		}
	}
}

// Subscribers returns how many of the patterns other hosts subscribe to match topic, as far as
// this host knows now: a message on topic published now is forwarded iff it is not 0 (or the
// link is past its bounds and forwards everything).
func (l *Link) Subscribers(topic string) int {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	return len(l.out.match(topic, nil))
}
