package astrid

import (
	"fmt"
	"strings"
)

// Uplinks (upstream's astrid_uplink_register and astrid_uplink_send): a capsule that connects
// users of a chat platform registers an uplink, then hands the host each message a user sends.
// The host publishes them on the bus, on TopicUplinkInbound, for other capsules to act on. Only
// a capsule whose manifest declares [[uplink]] has an inbound queue (128 messages, drained onto
// the bus no faster than its [limits] ipc_bytes_per_sec); without it, Send traps.

// Limits of the uplink functions.
const (
	// MaxUplinks is how many uplinks one capsule may register (upstream's 32).
	MaxUplinks = 32
	// MaxUplinkFieldBytes bounds an uplink's name, platform and profile, and a platform user id.
	MaxUplinkFieldBytes = 512
	// MaxUplinkContentBytes bounds a message's content: 1 MiB.
	MaxUplinkContentBytes = 1 << 20
)

// TopicUplinkInbound is where the host publishes the inbound messages of every capsule's
// uplinks: {"uplink_id", "platform", "platform_user_id", "content", "context": null,
// "thread_id": null, "timestamp", "capsule_id"}.
const TopicUplinkInbound = "astrid.v1.uplink.inbound"

// uplinkProfiles are the profiles the host accepts (human is chat).
var uplinkProfiles = []string{"chat", "interactive", "notify", "bridge", "human"}

// Uplink is a registered uplink.
type Uplink struct {
	// ID is the uplink's UUID, as the host gave it.
	ID string
}

// RegisterUplink registers an uplink named name on platform (trimmed and lower-cased by the
// host) with profile chat, interactive, notify, bridge or human. The host traps a duplicate
// (name, platform) and a 33rd uplink; RegisterUplink returns an error, without calling the
// host, for a field over MaxUplinkFieldBytes or an unknown profile.
func RegisterUplink(name, platform, profile string) (Uplink, error) {
	for _, f := range []struct{ what, v string }{{"name", name}, {"platform", platform}, {"profile", profile}} {
		if err := checkLen("RegisterUplink", f.what, len(f.v), MaxUplinkFieldBytes); err != nil {
			return Uplink{}, err
		}
	}
	if !containsFold(uplinkProfiles, profile) {
		return Uplink{}, fmt.Errorf("astrid: RegisterUplink: profile %q: want chat, interactive, notify, bridge or human", profile)
	}
	return Uplink{ID: string(callHost3(hostUplinkRegister, name, platform, profile))}, nil
}

// Send hands the host a message content from the platform's user platformUserID. It reports
// whether the message was queued for the bus; false means the capsule's queue was full and the
// message was dropped. Send returns an error, without calling the host, for a user id over
// MaxUplinkFieldBytes or content over MaxUplinkContentBytes.
func (u Uplink) Send(platformUserID, content string) (queued bool, err error) {
	if err := checkLen("Uplink.Send", "platform user id", len(platformUserID), MaxUplinkFieldBytes); err != nil {
		return false, err
	}
	if err := checkLen("Uplink.Send", "content", len(content), MaxUplinkContentBytes); err != nil {
		return false, err
	}
	b := callHost3(hostUplinkSend, u.ID, platformUserID, content)
	var r struct {
		OK bool `json:"ok"`
	}
	if err := decodeResult("astrid_uplink_send", b, &r); err != nil {
		return false, err
	}
	return r.OK, nil
}

// callHost3 passes a, b and c to the host function fn in kernel blocks and returns a copy of
// the result block, freeing all four.
func callHost3(fn func(a, b, c uint64) uint64, a, b, c string) []byte {
	ma, mb, mc := AllocateString(a), AllocateString(b), AllocateString(c)
	r := FindMemory(fn(ma.handle, mb.handle, mc.handle))
	ma.Free()
	mb.Free()
	mc.Free()
	out := r.Bytes()
	r.Free()
	return out
}

// containsFold reports whether list holds s, ignoring case.
func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
