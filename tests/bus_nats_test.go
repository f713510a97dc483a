package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/bus/cluster"
)

// The bus across hosts: real `astrid-host run` processes on a real NATS server (embedded in the
// test, or in a host with --bus-listen), with buscount capsules (tests/testdata/capsules/buscount)
// that publish and count on command. The test itself joins the bus as a third host, through
// package bus/cluster, to send the commands and read the reports.

// relayCapsule writes a relay capsule named name that counts the messages of pattern sub, with
// the given ACLs, and returns its directory.
func relayCapsule(t *testing.T, name, sub string, publish, subscribe []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	q := func(ss []string) string {
		b, _ := json.Marshal(ss)
		return string(b)
	}
	toml := fmt.Sprintf(`[package]
name = %q
version = "0.1.0"
astrid-version = ">=0.5.0"

[[component]]
id = "buscount"
file = "buscount.wasm"

[capabilities]
ipc_publish = %s
ipc_subscribe = %s

[env]
name = { type = "string", default = %q }
sub = { type = "string", default = %q }

[limits]
call_timeout = "60s"
`, name, q(publish), q(subscribe), name, sub)
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(capsules["buscount"], "buscount.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buscount.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var testACL = []string{"test.v1.*"}

// busHost is an `astrid-host run` on the bus, with its id there.
type busHost struct {
	*runningHost
	id string
}

var joinedRE = regexp.MustCompile(`bus: joined NATS: .*host_id=([0-9a-f]+)`)

func startBusHost(t *testing.T, busArgs []string, caps ...string) *busHost {
	t.Helper()
	state := t.TempDir()
	// The tests' shared module cache: buscount is compiled once per run, not once per host.
	if err := os.Symlink(sharedModules, filepath.Join(state, "modules")); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--state", state, "--log-level", "debug"}, busArgs...)
	r := startRun(t, append(args, caps...)...)
	m := joinedRE.FindStringSubmatch(r.logText())
	if m == nil {
		t.Fatalf("the host did not say it joined the bus:\n%s", r.logText())
	}
	return &busHost{r, m[1]}
}

var interestRE = regexp.MustCompile(`bus: interest of a host: host_id=([0-9a-f]+) full=(true|false) set=(\d+) add=(\d+) del=(\d+)`)

// awaitInterest waits until h's log shows that h knows of at least n patterns host id subscribes
// to (its full set, answering h's hello, and the changes since).
func (h *busHost) awaitInterest(t *testing.T, id string, n int) {
	t.Helper()
	waitFor(t, eventTimeout, fmt.Sprintf("a host to learn %d subscriptions of another", n), func() bool {
		total := 0
		for _, m := range interestRE.FindAllStringSubmatch(h.logText(), -1) {
			if m[1] != id {
				continue
			}
			var set, add, del int
			fmt.Sscan(m[3], &set)
			fmt.Sscan(m[4], &add)
			fmt.Sscan(m[5], &del)
			if m[2] == "true" {
				total = set
			}
			total += add - del
		}
		return total >= n
	})
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tester is the test's own host on the bus.
type tester struct {
	b       *bus.Bus
	link    *cluster.Link
	reports *bus.Subscription
}

func joinAsTester(t *testing.T, url string) *tester {
	t.Helper()
	b := bus.New(bus.Options{})
	l, err := cluster.Connect(b, cluster.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	reports, err := b.SubscribeShared("test.v1.report.*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reports.Close)
	return &tester{b: b, link: l, reports: reports}
}

// command publishes a command for the relay capsule name, once its host has told the bus.
func (ts *tester) command(t *testing.T, name, verb string, data any) {
	t.Helper()
	topic := "test.v1.cmd." + name + "." + verb
	waitFor(t, eventTimeout, "the bus to know "+name+"'s subscription", func() bool { return ts.link.Subscribers(topic) > 0 })
	payload, _ := json.Marshal(data)
	if _, err := ts.b.PublishShared([]bus.Message{{Topic: topic, Payload: payload, SourceID: "tester"}}); err != nil {
		t.Fatal(err)
	}
}

// await waits for a message on topic among the reports.
func (ts *tester) await(t *testing.T, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	for {
		env, err := ts.reports.Recv(ctx, 1<<20)
		if err != nil {
			t.Fatalf("no message on %s: %v", topic, err)
		}
		for _, m := range env.Messages {
			if m.Topic == topic {
				return
			}
		}
	}
}

type relayCounts struct {
	Delivered   uint64         `json:"delivered"`
	Lagged      uint64         `json:"lagged"`
	OrderErrors uint64         `json:"order_errors"`
	Last        int64          `json:"last"`
	Topics      map[string]int `json:"topics"`
}

// report asks name for its counts until cond holds for them (a report is a snapshot; messages
// may still be on their way), and returns the last.
func (ts *tester) report(t *testing.T, name string, cond func(relayCounts) bool) relayCounts {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var c relayCounts
	for {
		ts.command(t, name, "report", struct{}{})
		// Across a NATS server's restart the command or the report may be lost (the tester's
		// subscription counts it as lagged): ask again after a while, until the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := false
		for !got {
			env, err := ts.reports.Recv(ctx, 1<<20)
			if err != nil {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("no report from %s: %v", name, err)
				}
				break
			}
			for _, m := range env.Messages {
				if m.Topic != "test.v1.report."+name {
					continue
				}
				var p struct{ Data relayCounts }
				if err := json.Unmarshal(m.Payload, &p); err != nil {
					t.Fatal(err)
				}
				c, got = p.Data, true
			}
		}
		cancel()
		if got && cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's last report %+v never satisfied the test", name, c)
		}
	}
}

// refusedOn sums what a host logged as refused by the bus.
func refusedOn(h *busHost) uint64 {
	var n uint64
	for _, m := range regexp.MustCompile(`bus: publishes refused: .*refused_total=(\d+)`).FindAllStringSubmatch(h.logText(), -1) {
		fmt.Sscan(m[1], &n) // the last total
	}
	return n
}

func TestBusAcrossHosts(t *testing.T) {
	for _, mode := range []string{"nats-server", "bus-listen"} {
		t.Run(mode, func(t *testing.T) { testBusAcrossHosts(t, mode) })
	}
}

func testBusAcrossHosts(t *testing.T, mode string) {
	var srv *cluster.Server
	var url string
	var argsA, argsB []string
	if mode == "nats-server" {
		var err error
		if srv, err = cluster.Listen(cluster.ServerOptions{Addr: "127.0.0.1:0"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown() })
		url = srv.URL()
		// A's reconnect buffer holds the whole stream of the restart case (20,000 messages).
		argsA, argsB = []string{"--bus", url, "--bus-reconnect-buffer", fmt.Sprint(64 << 20)}, []string{"--bus", url}
	} else {
		port := freePort(t)
		url = fmt.Sprintf("nats://127.0.0.1:%d", port)
		argsA, argsB = []string{"--bus-listen", fmt.Sprintf("127.0.0.1:%d", port)}, []string{"--bus", url}
	}
	// A publishes; B holds a relay that counts everything, one whose ACL covers only
	// test.v1.data.y.* (trailing "*": one or more segments), and a slow one.
	relayA := relayCapsule(t, "relay-a", "test.v1.cmd.*", testACL, testACL)
	relayB := relayCapsule(t, "relay-b", "test.v1.data.*", testACL, testACL)
	narrowB := relayCapsule(t, "narrow-b", "test.v1.data.y.*", testACL, []string{"test.v1.data.y.*", "test.v1.cmd.*", "test.v1.wake.*", "test.v1.ack.*"})
	slowB := relayCapsule(t, "slow-b", "test.v1.slow.*", testACL, testACL)
	var a, b *busHost
	if mode == "nats-server" {
		b = startBusHost(t, argsB, relayB, narrowB, slowB)
		a = startBusHost(t, argsA, relayA)
	} else {
		a = startBusHost(t, argsA, relayA)
		b = startBusHost(t, argsB, relayB, narrowB, slowB)
	}
	a.awaitInterest(t, b.id, 9) // three relays, three subscriptions each
	ts := joinAsTester(t, url)

	t.Run("10000 messages in order", func(t *testing.T) {
		const n = 10000
		// relay-a waits for relay-b's acknowledgements every 512 messages (half relay-b's queue):
		// a subscriber that keeps up loses nothing.
		ts.command(t, "relay-a", "send", map[string]any{"n": n, "topic": "test.v1.data.x", "window": 512})
		c := ts.report(t, "relay-b", func(c relayCounts) bool { return c.Delivered+c.Lagged >= n })
		if c.Delivered != n || c.Lagged != 0 || c.OrderErrors != 0 || c.Last != n {
			t.Fatalf("relay-b: %+v; want all %d delivered in order", c, n)
		}
	})
	t.Run("ACL and trailing star across hosts", func(t *testing.T) {
		for _, topic := range []string{"test.v1.data.y", "test.v1.data.y.z", "test.v1.data.y.z.w", "test.v1.data.q"} {
			ts.command(t, "relay-a", "send", map[string]any{"n": 3, "topic": topic})
		}
		ts.command(t, "relay-a", "send", map[string]any{"n": 1, "topic": "test.v1.data.y.end"})
		c := ts.report(t, "narrow-b", func(c relayCounts) bool { return c.Topics["test.v1.data.y.end"] == 1 })
		want := map[string]int{"test.v1.data.y.z": 3, "test.v1.data.y.z.w": 3, "test.v1.data.y.end": 1}
		if fmt.Sprint(c.Topics) != fmt.Sprint(want) || c.Lagged != 0 {
			t.Fatalf("narrow-b got %v (lagged %d); want %v: its ACL covers test.v1.data.y.* only", c.Topics, c.Lagged, want)
		}
	})
	t.Run("slow subscriber gets an exact lagged", func(t *testing.T) {
		const n = 5000
		ts.command(t, "slow-b", "hold", struct{}{})
		ts.await(t, "test.v1.report.slow-b.held")
		// relay-a publishes the wake-up after its n messages: the same publisher, so slow-b's
		// queue has seen all n when it wakes.
		ts.command(t, "relay-a", "send", map[string]any{"n": n, "topic": "test.v1.slow.x", "then": "test.v1.wake.slow-b"})
		c := ts.report(t, "slow-b", func(c relayCounts) bool { return c.Delivered+c.Lagged >= n })
		if c.Delivered+c.Lagged != n || c.Lagged < n-1024 || c.Delivered > 1024 || c.OrderErrors != 0 {
			t.Fatalf("slow-b: %+v; want delivered + lagged == %d with at least %d lagged (its queue holds 1024)", c, n, n-1024)
		}
	})
	if srv != nil {
		t.Run("NATS server killed and restarted mid-stream", func(t *testing.T) {
			const n = 20000
			// Everything relay-a sent on test.v1.data.* so far has reached relay-b.
			before := ts.report(t, "relay-b", func(c relayCounts) bool { return c.Delivered+c.Lagged >= 10000+4*3+1 })
			watch, err := ts.b.SubscribeShared("test.v1.data.restart")
			if err != nil {
				t.Fatal(err)
			}
			defer watch.Close()
			a.awaitInterest(t, ts.link.ID(), 2) // test.v1.report.* and this one
			ts.command(t, "relay-a", "send", map[string]any{"n": n, "topic": "test.v1.data.restart"})
			// Kill the server once the stream is flowing, and start it again at once on its port.
			ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
			defer cancel()
			if _, err := watch.Recv(ctx, 1<<20); err != nil {
				t.Fatalf("the stream did not start: %v", err)
			}
			addr := srv.Addr().String()
			srv.Shutdown()
			if srv, err = cluster.Listen(cluster.ServerOptions{Addr: addr}); err != nil {
				t.Fatal(err)
			}
			// A's reconnect buffer (64 MiB here) holds the whole stream, so nothing is refused:
			// what the dying server and the broken connection lost, relay-b counts as lagged.
			c := ts.report(t, "relay-b", func(c relayCounts) bool {
				return c.Delivered+c.Lagged-before.Delivered-before.Lagged >= n
			})
			got := c.Delivered + c.Lagged - before.Delivered - before.Lagged
			if got != n || c.OrderErrors != 0 || refusedOn(a) != 0 {
				t.Fatalf("relay-b: %+v (before: %+v), refused on A %d: delivered + lagged = %d, want %d and none refused", c, before, refusedOn(a), got, n)
			}
			t.Logf("across the restart: delivered %d, lagged %d", c.Delivered-before.Delivered, c.Lagged-before.Lagged)
		})
	}
	// Last: it ends relay-a's run loop.
	t.Run("ACL refusal on A as on one host", func(t *testing.T) {
		watch, err := ts.b.SubscribeShared("forbidden.v1.*")
		if err != nil {
			t.Fatal(err)
		}
		defer watch.Close()
		ts.command(t, "relay-a", "send", map[string]any{"n": 1, "topic": "forbidden.v1.x"})
		// The shim's guard refuses it before the host's bus sees it, with the words of one host.
		want := `Capsule 'relay-a' is not allowed to publish to topic 'forbidden.v1.x' — declared ipc_publish patterns: [\"test.v1.*\"]`
		waitFor(t, eventTimeout, "relay-a's refusal", func() bool { return strings.Contains(a.logText(), want) })
		if st := watch.Stats(); st.Matched != 0 {
			t.Fatalf("the refused message reached another host: %+v", st)
		}
	})
}
