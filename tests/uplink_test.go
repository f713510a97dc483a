package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/astrid-go/astrid/host"
)

const uplinkDecl = "[[uplink]]\nname = \"chat\"\nplatform = \"discord\"\nprofile = \"chat\"\n"

// TestUplinkRegisterSend: register (platform normalised, profiles, the cap of 32, duplicates),
// send with upstream's refusals, and the inbound message on the bus.
func TestUplinkRegisterSend(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, capsuleVariant(t, "raw", uplinkDecl))
	w := watchBus(t, h, host.TopicUplinkInbound)

	id, err := callRaw(t, inst, "astrid_uplink_register", []byte("bot"), []byte("  Discord "), []byte("HUMAN"))
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := uuid.Parse(string(id)); err != nil || len(id) != 36 {
		t.Fatalf("register returned %q, want a UUID", id)
	}
	for _, tc := range []struct {
		name string
		args [][]byte
		want string
	}{
		{"bad profile", [][]byte{[]byte("x"), []byte("p"), []byte("Shouty\n")}, `invalid uplink profile: "shouty\n" (expected: chat, interactive, notify, bridge, human)`},
		{"duplicate", [][]byte{[]byte("bot"), []byte("DISCORD"), []byte("chat")}, "capsule raw: duplicate uplink name and platform"},
		{"name too long", [][]byte{[]byte(strings.Repeat("n", 513)), []byte("p"), []byte("chat")}, "memory allocation of 513 bytes exceeds maximum allowed limit of 512 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := callRaw(t, inst, "astrid_uplink_register", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("register: %v, want %q", err, tc.want)
			}
		})
	}

	out, err := callRaw(t, inst, "astrid_uplink_send", id, []byte("user-1"), []byte("hi there"))
	if err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("send: %s, %v", out, err)
	}
	var msg host.InboundMessageJSON
	if err := json.Unmarshal(w.next(host.TopicUplinkInbound), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.UplinkID != string(id) || msg.Platform != "discord" || msg.PlatformUserID != "user-1" || msg.Content != "hi there" || msg.CapsuleID != "raw" || msg.Timestamp == "" {
		t.Fatalf("inbound message %+v", msg)
	}

	unknown := uuid.NewString()
	for _, tc := range []struct {
		name string
		id   string
		want string
	}{
		{"not a uuid", "not-a-uuid", "invalid uplink_id: invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 1"},
		{"short", "abc", "invalid uplink_id: invalid length: expected length 32 for simple format, found 3"},
		{"groups", "0000-0000", "invalid uplink_id: invalid group count: expected 5, found 2"},
		{"too long", strings.Repeat("a", 65), "uplink_id too long"},
		{"over the block limit", strings.Repeat("a", 129), "memory allocation of 129 bytes exceeds maximum allowed limit of 128 bytes"},
		{"not registered", unknown, "uplink " + unknown + " not registered by capsule raw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := callRaw(t, inst, "astrid_uplink_send", []byte(tc.id), []byte("u"), []byte("c")); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("send: %v, want %q", err, tc.want)
			}
		})
	}

	for k := 2; k <= 32; k++ {
		if _, err := callRaw(t, inst, "astrid_uplink_register", []byte("bot"), []byte("p"+string(rune('a'+k))), []byte("notify")); err != nil {
			t.Fatalf("register %d: %v", k, err)
		}
	}
	if _, err := callRaw(t, inst, "astrid_uplink_register", []byte("bot"), []byte("33rd"), []byte("chat")); err == nil || !strings.Contains(err.Error(), "capsule raw: uplink registration limit reached") {
		t.Fatalf("33rd register: %v", err)
	}
}

// TestUplinkNoInboundChannel: a capsule that declares no [[uplink]] may register, but its sends
// have nowhere to go, as upstream.
func TestUplinkNoInboundChannel(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, "raw")
	id, err := callRaw(t, inst, "astrid_uplink_register", []byte("bot"), []byte("x"), []byte("bridge"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := callRaw(t, inst, "astrid_uplink_send", id, []byte("u"), []byte("c")); err == nil || !strings.Contains(err.Error(), "capsule raw has no inbound channel") {
		t.Fatalf("send: %v", err)
	}
}

// TestUplinkQueueFull: inbound messages go to the bus no faster than the capsule's
// ipc_bytes_per_sec; at 1 byte per second the first is published, the queue of 128 fills
// behind it, and further sends are dropped with {"dropped":true,"ok":false}.
func TestUplinkQueueFull(t *testing.T) {
	h := newHost(t)
	inst, _ := loadCapsule(t, h, rawLimited(t))
	w := watchBus(t, h, host.TopicUplinkInbound)
	id, err := callRaw(t, inst, "astrid_uplink_register", []byte("bot"), []byte("x"), []byte("chat"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := callRaw(t, inst, "astrid_uplink_send", id, []byte("u"), []byte("first")); err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("first send: %s, %v", out, err)
	}
	w.next(host.TopicUplinkInbound) // published at once (the burst); the next waits minutes
	accepted, dropped := 0, 0
	for k := 0; k < host.InboundQueueLen+5; k++ {
		out, err := callRaw(t, inst, "astrid_uplink_send", id, []byte("u"), []byte("more"))
		switch {
		case err != nil:
			t.Fatal(err)
		case string(out) == `{"ok":true}` && dropped == 0:
			accepted++
		case string(out) == `{"dropped":true,"ok":false}`:
			dropped++
		default:
			t.Fatalf("send %d: %s after %d dropped", k, out, dropped)
		}
	}
	// The drain holds one message while it waits, so 128 or 129 fit.
	if accepted < host.InboundQueueLen || accepted > host.InboundQueueLen+1 || dropped == 0 {
		t.Fatalf("%d accepted, %d dropped; want the queue of %d to fill", accepted, dropped, host.InboundQueueLen)
	}
}

// rawLimited is the raw capsule with [[uplink]] and [limits] ipc_bytes_per_sec = 1.
func rawLimited(t *testing.T) string {
	t.Helper()
	return editedVariant(t, "raw", uplinkDecl, "[limits]", "ipc_bytes_per_sec = 1")
}
