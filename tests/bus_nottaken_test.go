package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/cluster"
)

// TestPublishNotTaken: a guest's publishes that the link to other hosts refuses (here: over the
// NATS server's max_payload) are reported to the guest once, with the exact number the host did
// not publish (the refused one and the rest of its batch, not those before it), at the guest's
// next host call or, if none comes, at the end of its export call; they reach no subscriber,
// here or on another host; and the guest's next call works.
func TestPublishNotTaken(t *testing.T) {
	checkLeaks(t)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, MaxPayload: 4096, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	h := newHost(t)
	if err := h.JoinBus(cluster.Options{URL: srv.ClientURL()}); err != nil {
		t.Fatal(err)
	}
	// Another host's subscriber, so that the host forwards the topic over NATS.
	other := bus.New(bus.Options{})
	link, err := cluster.Connect(other, cluster.Options{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(link.Close)
	remote, err := other.SubscribeShared("test.v1.nt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remote.Close)
	waitFor(t, eventTimeout, "the host to learn the other host's interest", func() bool { return h.BusSubscribers("test.v1.nt") > 0 })
	pub, _ := loadCapsule(t, h, "ipc")
	local, _ := loadCapsule(t, h, "ipc")
	call(t, local, "subscribe", "test.v1.nt")

	cases := []struct {
		name  string
		sizes []int
		then  string // a host call after the publishes
		want  string // the guest's error
		not   uint64 // messages not published
	}{
		// One small message is published, then the big one is refused: it and the two after it
		// in the same batch are not published. (Before, the report counted the whole batch.)
		{"reported at the end of the call", []int{100, 8000, 100, 100}, "", "the host did not take 3 published message(s): publish: the bus to other hosts refused the message (and 2 after it)", 3},
		{"reported at the next host call", []int{100, 100, 8000}, "test.v1.other", "astrid_ipc_subscribe: the host did not take 1 published message(s): publish: the bus to other hosts refused the message (and 0 after it)", 1},
	}
	published := uint64(0) // messages that must reach both subscribers: those before a refusal
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refused := h.BusRefused()
			msg := guestFailure(t, pub, "publish", map[string]any{"topic": "test.v1.nt", "sizes": c.sizes, "then_subscribe": c.then})
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "max_payload") {
				t.Fatalf("the guest's error: %q; want %q, naming max_payload", msg, c.want)
			}
			t.Log(msg)
			for _, n := range c.sizes {
				if n > 4096 {
					break
				}
				published++
			}
			if got := h.BusRefused() - refused; got != c.not {
				t.Errorf("the host counted %d messages refused; want %d, as the guest was told", got, c.not)
			}
			// Reported once: the next call works, and its message is the marker that all before
			// it have arrived.
			call(t, pub, "publish", map[string]any{"topic": "test.v1.nt", "sizes": []int{10}})
			published++
			waitFor(t, eventTimeout, "the other host to receive the marker", func() bool { return remote.Stats().Matched >= published })
			if st := remote.Stats(); st.Matched != published {
				t.Errorf("the other host matched %d messages; want %d (refused ones reach nobody)", st.Matched, published)
			}
			for _, st := range local.SubscriptionStats() {
				if st.Matched != published {
					t.Errorf("the local subscriber matched %d messages; want %d (refused ones reach nobody)", st.Matched, published)
				}
			}
		})
	}
}
