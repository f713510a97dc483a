package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus/internal/topictest"
)

// subscribe subscribes pattern on b and checks, when the test ends, the
// subscription's invariant Delivered + Lagged + Queued == Matched.
func subscribe(t testing.TB, b *Bus, pattern string) *Subscription {
	t.Helper()
	s := b.Subscribe(pattern)
	t.Cleanup(func() { checkInvariant(t, s) })
	return s
}

func checkInvariant(t testing.TB, s *Subscription) {
	t.Helper()
	st := s.Stats()
	if st.Delivered+st.Lagged+st.Queued != st.Matched {
		t.Errorf("subscription %q: delivered %d + lagged %d + queued %d != matched %d",
			s.Pattern(), st.Delivered, st.Lagged, st.Queued, st.Matched)
	}
}

// payload returns a custom payload of exactly n bytes (n >= 30).
func payload(n int) json.RawMessage {
	p, _ := CustomPayload("")
	pad := make([]byte, n-len(p))
	for i := range pad {
		pad[i] = 'x'
	}
	p, _ = CustomPayload(string(pad))
	if len(p) != n {
		panic(fmt.Sprintf("payload(%d) has %d bytes", n, len(p)))
	}
	return p
}

// numbered returns a message on topic whose payload carries n.
func numbered(topic string, n int) Message {
	p, _ := CustomPayload(n)
	return Message{Topic: topic, Payload: p}
}

// number returns what numbered put in m.
func number(t testing.TB, m Message) int {
	t.Helper()
	n, err := strconv.Atoi(string(GuestBytes(m.Payload)))
	if err != nil {
		t.Fatalf("message %s: %v", m.Payload, err)
	}
	return n
}

func TestPublishSeqAndTimestamp(t *testing.T) {
	b := New(Options{})
	s := subscribe(t, b, "a.*")
	before := time.Now()
	if seq := b.Publish(Message{Topic: "nobody.listens"}); seq != 1 {
		t.Fatalf("first seq = %d, want 1", seq)
	}
	if seq := b.Publish(Message{Topic: "a..b"}); seq != 2 { // matches nothing, still counted
		t.Fatalf("second seq = %d, want 2", seq)
	}
	fixed := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if seq := b.Publish(Message{Topic: "a.b", Seq: 99, Timestamp: fixed}); seq != 3 {
		t.Fatalf("third seq = %d, want 3", seq)
	}
	b.Publish(Message{Topic: "a.c"})
	batch := []Message{{Topic: "a.d"}, {Topic: "x"}, {Topic: "a.e", Timestamp: fixed}}
	if first := b.PublishBatch(batch); first != 5 {
		t.Fatalf("PublishBatch first seq = %d, want 5", first)
	}
	if b.PublishBatch(nil) != 0 {
		t.Fatal("PublishBatch(nil) != 0")
	}
	if seq := b.Publish(Message{Topic: "a.f"}); seq != 8 {
		t.Fatalf("seq after batch = %d, want 8", seq)
	}
	env := s.Poll(1 << 20)
	wantSeqs := []uint64{3, 4, 5, 7, 8}
	if len(env.Messages) != len(wantSeqs) {
		t.Fatalf("got %d messages, want %d", len(env.Messages), len(wantSeqs))
	}
	for i, m := range env.Messages {
		if m.Seq != wantSeqs[i] {
			t.Errorf("message %d: seq %d, want %d", i, m.Seq, wantSeqs[i])
		}
		switch {
		case m.Seq == 3 || m.Seq == 7:
			if !m.Timestamp.Equal(fixed) {
				t.Errorf("seq %d: timestamp %v replaced", m.Seq, m.Timestamp)
			}
		case m.Timestamp.Before(before.Add(-time.Second)) || m.Timestamp.Location() != time.UTC:
			t.Errorf("seq %d: timestamp %v not set to now in UTC", m.Seq, m.Timestamp)
		}
	}
	if batch[0].Seq != 5 || batch[2].Seq != 7 {
		t.Errorf("PublishBatch did not write seqs back: %d, %d", batch[0].Seq, batch[2].Seq)
	}
}

func TestDeliveryFollowsMatch(t *testing.T) {
	// Every bus-matcher vector, through subscriptions instead of Match.
	b := New(Options{})
	for _, c := range topictest.BusMatcherVectors {
		s := subscribe(t, b, c.Pattern)
		b.Publish(Message{Topic: c.Topic})
		env := s.Poll(1 << 20)
		if got := len(env.Messages) == 1; got != c.Want {
			t.Errorf("subscription %q, publish %q: delivered %d messages, want match %v", c.Pattern, c.Topic, len(env.Messages), c.Want)
		}
		s.Close()
	}
	if n := b.Subscriptions(); n != 0 {
		t.Errorf("Subscriptions() = %d after closing all", n)
	}
	if !b.index.root.empty() {
		t.Errorf("index not pruned: %+v", b.index.root)
	}
}

func TestLaggedExact(t *testing.T) {
	cases := []struct {
		name                string
		opts                Options
		size, publish       int
		wantQueued, wantLag int
	}{
		{"4 messages", Options{QueueMessages: 4}, 40, 10, 4, 6},
		{"1000 bytes", Options{QueueBytes: 1000}, 300, 10, 3, 7},
		{"both, bytes bind", Options{QueueMessages: 4, QueueBytes: 1000}, 400, 10, 2, 8},
		{"both, count binds", Options{QueueMessages: 4, QueueBytes: 1000}, 100, 10, 4, 6},
		{"oversized message kept alone", Options{QueueBytes: 100}, 150, 3, 1, 2},
		{"no overflow", Options{QueueMessages: 4}, 40, 4, 4, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := New(c.opts)
			s := subscribe(t, b, "t")
			p := payload(c.size)
			for range c.publish {
				b.Publish(Message{Topic: "t", Payload: p})
			}
			st := s.Stats()
			if st.Queued != uint64(c.wantQueued) || st.Lagged != uint64(c.wantLag) || st.Matched != uint64(c.publish) {
				t.Fatalf("stats %+v, want queued %d lagged %d matched %d", st, c.wantQueued, c.wantLag, c.publish)
			}
			if st.QueuedBytes != c.wantQueued*c.size {
				t.Fatalf("queued bytes %d, want %d", st.QueuedBytes, c.wantQueued*c.size)
			}
			env := s.Poll(1 << 30)
			if len(env.Messages) != c.wantQueued || env.Lagged != uint64(c.wantLag) {
				t.Fatalf("envelope: %d messages, lagged %d; want %d, %d", len(env.Messages), env.Lagged, c.wantQueued, c.wantLag)
			}
			// The newest survive, in order.
			for i, m := range env.Messages {
				if want := uint64(c.wantLag + i + 1); m.Seq != want {
					t.Errorf("message %d has seq %d, want %d", i, m.Seq, want)
				}
			}
			if env := s.Poll(1 << 30); len(env.Messages) != 0 || env.Lagged != 0 {
				t.Fatalf("second envelope: %d messages, lagged %d; lagged is not read-and-reset", len(env.Messages), env.Lagged)
			}
			if st := s.Stats(); st.Lagged != uint64(c.wantLag) {
				t.Fatalf("total lagged %d, want %d", st.Lagged, c.wantLag)
			}
		})
	}
}

func TestPollBudget(t *testing.T) {
	sizes := []int{100, 200, 300, 50, 500}
	cases := []struct {
		budget int
		polls  [][]int // the sizes each successive Poll returns
	}{
		{1 << 20, [][]int{{100, 200, 300, 50, 500}}},
		{600, [][]int{{100, 200, 300}, {50, 500}}},
		{350, [][]int{{100, 200}, {300, 50}, {500}}},
		{299, [][]int{{100}, {200}, {300}, {50}, {500}}}, // 200 does not fit after 100; 300 alone is over
		{0, [][]int{{100}, {200}, {300}, {50}, {500}}},   // the first is always taken
		{-1, [][]int{{100}, {200}, {300}, {50}, {500}}},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.budget), func(t *testing.T) {
			b := New(Options{})
			s := subscribe(t, b, "t")
			for _, n := range sizes {
				b.Publish(Message{Topic: "t", Payload: payload(n)})
			}
			for i, want := range c.polls {
				env := s.Poll(c.budget)
				var got []int
				for _, m := range env.Messages {
					got = append(got, len(m.Payload))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("poll %d: sizes %v, want %v", i, got, want)
				}
				if env.Dropped != 0 {
					t.Fatalf("poll %d: dropped %d", i, env.Dropped)
				}
			}
			if env := s.Poll(c.budget); len(env.Messages) != 0 {
				t.Fatalf("messages left over: %d", len(env.Messages))
			}
			if st := s.Stats(); st.Delivered != uint64(len(sizes)) {
				t.Fatalf("delivered %d, want %d", st.Delivered, len(sizes))
			}
		})
	}
}

// waitingHook makes s signal on the returned channel each time Recv is about
// to wait.
func waitingHook(s *Subscription) <-chan struct{} {
	waiting := make(chan struct{}, 16)
	s.waitHook = func() { waiting <- struct{}{} }
	return waiting
}

type recvResult struct {
	env Envelope
	err error
}

func recvAsync(ctx context.Context, s *Subscription, maxBytes int) <-chan recvResult {
	out := make(chan recvResult, 1)
	go func() {
		env, err := s.Recv(ctx, maxBytes)
		out <- recvResult{env, err}
	}()
	return out
}

func TestRecvWakesOnPublish(t *testing.T) {
	b := New(Options{})
	s := subscribe(t, b, "a.*")
	waiting := waitingHook(s)
	done := recvAsync(context.Background(), s, 1<<20)
	<-waiting // Recv found nothing and waits
	b.Publish(Message{Topic: "other"})
	b.Publish(numbered("a.b", 7))
	r := <-done
	if r.err != nil || len(r.env.Messages) != 1 || number(t, r.env.Messages[0]) != 7 {
		t.Fatalf("Recv = %+v, %v", r.env, r.err)
	}
}

func TestRecvReturnsQueuedAtOnce(t *testing.T) {
	b := New(Options{QueueMessages: 2})
	s := subscribe(t, b, "t")
	for i := range 5 {
		b.Publish(numbered("t", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // even a done context gets what is already queued
	env, err := s.Recv(ctx, 1<<20)
	if err != nil || len(env.Messages) != 2 || env.Lagged != 3 || number(t, env.Messages[0]) != 3 {
		t.Fatalf("Recv = %+v, %v; want messages 3 and 4 with lagged 3", env, err)
	}
}

func TestRecvContextDone(t *testing.T) {
	for _, name := range []string{"cancel", "deadline"} {
		t.Run(name, func(t *testing.T) {
			b := New(Options{})
			s := subscribe(t, b, "t")
			waiting := waitingHook(s)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wantErr := context.Canceled
			if name == "deadline" {
				ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Millisecond))
				defer cancel()
				wantErr = context.DeadlineExceeded
			}
			done := recvAsync(ctx, s, 1<<20)
			<-waiting
			if name == "cancel" {
				cancel()
			}
			r := <-done
			if !errors.Is(r.err, wantErr) || len(r.env.Messages) != 0 {
				t.Fatalf("Recv = %+v, %v; want an empty envelope and %v", r.env, r.err, wantErr)
			}
			// The subscription still works.
			b.Publish(Message{Topic: "t"})
			if env := s.Poll(1 << 20); len(env.Messages) != 1 {
				t.Fatalf("after cancel: %d messages", len(env.Messages))
			}
		})
	}
}

func TestRecvClose(t *testing.T) {
	b := New(Options{})
	s := subscribe(t, b, "t")
	other := subscribe(t, b, "t")
	waiting := waitingHook(s)
	done := recvAsync(context.Background(), s, 1<<20)
	<-waiting
	if n := b.Subscriptions(); n != 2 {
		t.Fatalf("Subscriptions() = %d, want 2", n)
	}
	s.Close()
	r := <-done
	if !errors.Is(r.err, ErrClosed) || len(r.env.Messages) != 0 {
		t.Fatalf("Recv after Close = %+v, %v", r.env, r.err)
	}
	s.Close() // idempotent
	if n := b.Subscriptions(); n != 1 {
		t.Fatalf("Subscriptions() = %d after Close, want 1", n)
	}
	b.Publish(Message{Topic: "t"})
	if st := s.Stats(); st.Matched != 0 {
		t.Fatalf("closed subscription matched %d messages", st.Matched)
	}
	if st := other.Stats(); st.Queued != 1 {
		t.Fatalf("other subscription queued %d, want 1", st.Queued)
	}
	if _, err := s.Recv(context.Background(), 1<<20); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv on a closed subscription = %v", err)
	}
	other.Close()
	if n := b.Subscriptions(); n != 0 {
		t.Fatalf("Subscriptions() = %d, want 0", n)
	}
}

func TestCloseKeepsQueuedMessages(t *testing.T) {
	b := New(Options{})
	s := subscribe(t, b, "t")
	b.Publish(Message{Topic: "t"})
	s.Close()
	if env, err := s.Recv(context.Background(), 1<<20); err != nil || len(env.Messages) != 1 {
		t.Fatalf("Recv = %+v, %v; want the message queued before Close", env, err)
	}
}

func TestRecvPartialWakesOtherWaiter(t *testing.T) {
	// Two Recvs on one subscription; one publish batch that does not fit one
	// envelope must reach both, not leave the second waiting.
	b := New(Options{})
	s := subscribe(t, b, "t")
	waiting := waitingHook(s)
	r1 := recvAsync(context.Background(), s, 0)
	r2 := recvAsync(context.Background(), s, 0)
	<-waiting
	<-waiting
	p := payload(100) // each alone fills an envelope of budget 0
	b.PublishBatch([]Message{{Topic: "t", Payload: p}, {Topic: "t", Payload: p}})
	a, c := <-r1, <-r2
	if a.err != nil || c.err != nil || len(a.env.Messages) != 1 || len(c.env.Messages) != 1 {
		t.Fatalf("Recvs = %+v / %+v", a, c)
	}
}

func TestSubscribeAnyString(t *testing.T) {
	b := New(Options{})
	patterns := []string{"", ".", "a..b", "a.", ".a", "*", "**", topictest.Deep(21), topictest.Deep(30) + ".*", "\xff", "a.\x00"}
	var subs []*Subscription
	for _, p := range patterns {
		subs = append(subs, subscribe(t, b, p))
	}
	if n := b.Subscriptions(); n != len(patterns) {
		t.Fatalf("Subscriptions() = %d, want %d", n, len(patterns))
	}
	for _, top := range []string{"a", "a.b", topictest.Deep(20), topictest.Deep(21), "\xff", "a.\x00"} {
		b.Publish(Message{Topic: top})
	}
	for i, s := range subs {
		want := uint64(0)
		switch patterns[i] {
		case "*":
			want = 5 // every topic up to depth 20
		case "\xff", "a.\x00":
			want = 1
		}
		if st := s.Stats(); st.Matched != want {
			t.Errorf("pattern %q matched %d, want %d", patterns[i], st.Matched, want)
		}
		s.Close()
	}
	if n := b.Subscriptions(); n != 0 {
		t.Fatalf("Subscriptions() = %d, want 0", n)
	}
}

func TestPublishBatchGroupsInOrder(t *testing.T) {
	b := New(Options{QueueMessages: 3})
	all := subscribe(t, b, "*")
	odd := subscribe(t, b, "odd.*")
	var ms []Message
	for i := range 8 {
		topic := "even.x"
		if i%2 == 1 {
			topic = "odd.x"
		}
		ms = append(ms, numbered(topic, i))
	}
	b.PublishBatch(ms)
	check := func(s *Subscription, want []int, lagged uint64) {
		t.Helper()
		env := s.Poll(1 << 20)
		var got []int
		for _, m := range env.Messages {
			got = append(got, number(t, m))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || env.Lagged != lagged {
			t.Errorf("%q: got %v lagged %d, want %v lagged %d", s.Pattern(), got, env.Lagged, want, lagged)
		}
	}
	check(all, []int{5, 6, 7}, 5)
	check(odd, []int{3, 5, 7}, 1)
}

func TestConcurrentPublishersKeepTheirOrder(t *testing.T) {
	const publishers, perPublisher = 4, 2000
	const end = -1                       // the last message, published after all others
	b := New(Options{QueueMessages: 64}) // small: lag happens, order must hold anyway

	type sub struct {
		s    *Subscription
		last [publishers]int
	}
	var subs []*sub
	for _, p := range []string{"p.*", "p.*.m", "*", "p.1.*"} {
		subs = append(subs, &sub{s: subscribe(t, b, p), last: [publishers]int{-1, -1, -1, -1}})
	}
	var readers sync.WaitGroup
	for _, sb := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				env, err := sb.s.Recv(context.Background(), 4096)
				if err != nil {
					t.Errorf("%q: Recv: %v", sb.s.Pattern(), err)
					return
				}
				for _, m := range env.Messages {
					n, err := strconv.Atoi(string(GuestBytes(m.Payload)))
					if err != nil {
						t.Errorf("%q: payload %s", sb.s.Pattern(), m.Payload)
						return
					}
					if n == end {
						// The newest message is never evicted, so every
						// reader sees it.
						return
					}
					p, i := n/perPublisher, n%perPublisher
					if i <= sb.last[p] {
						t.Errorf("%q: publisher %d: message %d after %d", sb.s.Pattern(), p, i, sb.last[p])
					}
					sb.last[p] = i
				}
			}
		}()
	}
	// Subscriptions coming and going at the same time.
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		for i := range 500 {
			s := b.Subscribe(fmt.Sprintf("p.%d.*", i%publishers))
			s.Poll(1 << 20)
			checkInvariant(t, s)
			s.Close()
		}
	}()
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := 0; i < perPublisher; {
				if i%10 == 0 && i+5 <= perPublisher {
					batch := make([]Message, 5)
					for j := range batch {
						batch[j] = numbered(fmt.Sprintf("p.%d.m", p), p*perPublisher+i+j)
					}
					b.PublishBatch(batch)
					i += 5
					continue
				}
				b.Publish(numbered(fmt.Sprintf("p.%d.m", p), p*perPublisher+i))
				i++
			}
		}()
	}
	pubs.Wait()
	<-churnDone
	b.Publish(numbered("p.1.m", end))
	readers.Wait()
	for _, sb := range subs {
		st := sb.s.Stats()
		wantMatched := uint64(publishers*perPublisher + 1)
		if sb.s.Pattern() == "p.1.*" {
			wantMatched = perPublisher + 1
		}
		if st.Matched != wantMatched || st.Queued != 0 {
			t.Errorf("%q: %+v; want matched %d and nothing queued", sb.s.Pattern(), st, wantMatched)
		}
	}
}
