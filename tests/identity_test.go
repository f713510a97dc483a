package tests

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/astrid-go/astrid/host"
)

// The astrid_identity_* host functions through real shims, with the raw capsule: one identity
// store for every capsule of the host, gated by [capabilities] identity.

// identityCapsule is the raw capsule named name with [capabilities] identity = levels.
func identityCapsule(t testing.TB, name, levels string) string {
	return capsuleEdited(t, "raw", name, withCapability("identity = "+levels))
}

// identityCall calls fn with the JSON request and returns its answer.
func identityCall(t *testing.T, inst *host.Instance, fn, req string) string {
	t.Helper()
	out, err := callRaw(t, inst, fn, []byte(req))
	if err != nil {
		t.Fatalf("%s(%s): %v", fn, req, err)
	}
	return string(out)
}

func TestIdentityGates(t *testing.T) {
	h := newHost(t)
	none, _ := loadCapsule(t, h, "raw")
	resolve, _ := loadCapsule(t, h, identityCapsule(t, "resolver", `["resolve"]`))
	link, _ := loadCapsule(t, h, identityCapsule(t, "linker", `["link"]`))
	const uid = "67e55044-10b1-426f-9247-bb680e5fe0c8"
	denied := func(capsule, op, has string) string {
		return "storage error: capsule '" + capsule + "' denied: identity operation '" + op + "' not declared in manifest (has: " + has + ")"
	}
	tests := []struct {
		name string
		inst *host.Instance
		fn   string
		req  string
		want string
	}{
		{"resolve without identity", none, "astrid_identity_resolve", `{"platform":"discord","platform_user_id":"1"}`,
			`{"found":false,"error":"` + denied("raw", "resolve", "[]") + `"}`},
		{"resolve with resolve", resolve, "astrid_identity_resolve", `{"platform":"discord","platform_user_id":"1"}`, `{"found":false}`},
		{"link with resolve", resolve, "astrid_identity_link", `{"platform":"discord","platform_user_id":"1","astrid_user_id":"` + uid + `","method":"m"}`,
			`{"ok":false,"error":"` + strings.ReplaceAll(denied("resolver", "link", `["resolve"]`), `"`, `\"`) + `"}`},
		{"unlink with resolve", resolve, "astrid_identity_unlink", `{"platform":"discord","platform_user_id":"1"}`,
			`{"ok":false,"error":"` + strings.ReplaceAll(denied("resolver", "link", `["resolve"]`), `"`, `\"`) + `"}`},
		{"list_links with resolve", resolve, "astrid_identity_list_links", `{"astrid_user_id":"` + uid + `"}`,
			`{"ok":false,"error":"` + strings.ReplaceAll(denied("resolver", "link", `["resolve"]`), `"`, `\"`) + `"}`},
		{"resolve with link", link, "astrid_identity_resolve", `{"platform":"discord","platform_user_id":"1"}`, `{"found":false}`},
		{"list_links with link", link, "astrid_identity_list_links", `{"astrid_user_id":"` + uid + `"}`, `{"ok":true,"links":[]}`},
		{"unlink with link", link, "astrid_identity_unlink", `{"platform":"discord","platform_user_id":"1"}`, `{"ok":true,"removed":false}`},
		{"create_user with link", link, "astrid_identity_create_user", `{}`,
			`{"ok":false,"error":"` + strings.ReplaceAll(denied("linker", "admin", `["link"]`), `"`, `\"`) + `"}`},
		{"create_user without identity", none, "astrid_identity_create_user", `{"display_name":null}`,
			`{"ok":false,"error":"` + denied("raw", "admin", "[]") + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := identityCall(t, tc.inst, tc.fn, tc.req); got != tc.want {
				t.Fatalf("%s(%s)\n got  %s\n want %s", tc.fn, tc.req, got, tc.want)
			}
		})
	}
}

var linkedAt = regexp.MustCompile(`"linked_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00"`)

// TestIdentityShared: a user an admin capsule creates and links is what another capsule
// resolves, and it survives a restart of the host.
func TestIdentityShared(t *testing.T) {
	state := t.TempDir()
	h := newHost(t, func(c *host.Config) { c.StateDir = state })
	admin, _ := loadCapsule(t, h, identityCapsule(t, "admin", `["admin"]`))
	reader, _ := loadCapsule(t, h, identityCapsule(t, "reader", `["resolve"]`))

	var created struct {
		OK     bool   `json:"ok"`
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(identityCall(t, admin, "astrid_identity_create_user", `{"display_name":"Alice"}`)), &created); err != nil || !created.OK {
		t.Fatalf("create_user: %+v, %v", created, err)
	}
	id := created.UserID
	got := identityCall(t, admin, "astrid_identity_link", `{"platform":"  Discord ","platform_user_id":"123","astrid_user_id":"`+strings.ToUpper(id)+`","method":"chat_command"}`)
	want := `{"ok":true,"link":{"platform":"discord","platform_user_id":"123","astrid_user_id":"` + id + `",LINKED,"method":"chat_command"}}`
	if linkedAt.ReplaceAllString(got, "LINKED") != want {
		t.Fatalf("link:\n got  %s\n want %s", got, want)
	}
	resolved := `{"found":true,"user_id":"` + id + `","display_name":"Alice"}`
	if got := identityCall(t, reader, "astrid_identity_resolve", `{"platform":"DISCORD","platform_user_id":"123"}`); got != resolved {
		t.Fatalf("resolve from another capsule: %s", got)
	}
	listed := identityCall(t, admin, "astrid_identity_list_links", `{"astrid_user_id":"`+id+`"}`)
	if linkedAt.ReplaceAllString(listed, "LINKED") != `{"ok":true,"links":[{"platform":"discord","platform_user_id":"123","astrid_user_id":"`+id+`",LINKED,"method":"chat_command"}]}` {
		t.Fatalf("list_links: %s", listed)
	}

	h.Shutdown(context.Background())
	h = newHost(t, func(c *host.Config) { c.StateDir = state })
	reader, _ = loadCapsule(t, h, identityCapsule(t, "reader", `["resolve"]`))
	if got := identityCall(t, reader, "astrid_identity_resolve", `{"platform":"discord","platform_user_id":"123"}`); got != resolved {
		t.Fatalf("resolve after a restart: %s", got)
	}
	admin, _ = loadCapsule(t, h, identityCapsule(t, "admin", `["admin"]`))
	for _, want := range []string{`{"ok":true,"removed":true}`, `{"ok":true,"removed":false}`} {
		if got := identityCall(t, admin, "astrid_identity_unlink", `{"platform":"discord","platform_user_id":"123"}`); got != want {
			t.Fatalf("unlink: %s, want %s", got, want)
		}
	}
}

// TestIdentityRefusals: upstream's answers and traps for bad requests.
func TestIdentityRefusals(t *testing.T) {
	h := newHost(t)
	admin, _ := loadCapsule(t, h, identityCapsule(t, "admin", `["admin"]`))
	const ghost = "67e55044-10b1-426f-9247-bb680e5fe0c8"
	long := strings.Repeat("x", 513)
	tests := []struct {
		name, fn, req, want, trap string
	}{
		{name: "invalid UUID", fn: "astrid_identity_link", req: `{"platform":"d","platform_user_id":"1","astrid_user_id":"abc","method":"m"}`,
			want: `{"ok":false,"error":"invalid UUID: invalid length: expected length 32 for simple format, found 3"}`},
		{name: "invalid UUID character", fn: "astrid_identity_list_links", req: `{"astrid_user_id":"not-a-uuid"}`,
			want: "{\"ok\":false,\"error\":\"invalid UUID: invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 1\"}"},
		{name: "unknown user", fn: "astrid_identity_link", req: `{"platform":"d","platform_user_id":"1","astrid_user_id":"` + ghost + `","method":"m"}`,
			want: `{"ok":false,"error":"storage error: user not found: ` + ghost + `"}`},
		{name: "empty platform", fn: "astrid_identity_resolve", req: `{"platform":" ","platform_user_id":"1"}`,
			want: `{"found":false,"error":"storage error: invalid input: platform must not be empty"}`},
		{name: "slash", fn: "astrid_identity_unlink", req: `{"platform":"d","platform_user_id":"a/b"}`,
			want: `{"ok":false,"error":"storage error: invalid input: platform_user_id must not contain '/' or null bytes"}`},
		{name: "display name slash", fn: "astrid_identity_create_user", req: `{"display_name":"a/b"}`,
			want: `{"ok":false,"error":"storage error: invalid input: display_name must not contain '/' or null bytes"}`},
		{name: "long platform", fn: "astrid_identity_resolve", req: `{"platform":"` + long + `","platform_user_id":"1"}`,
			want: `{"found":false,"error":"storage error: invalid input: platform must be at most 512 bytes, not 513"}`},
		{name: "resolve not JSON", fn: "astrid_identity_resolve", req: `nope`, trap: "invalid resolve request: "},
		{name: "link missing field", fn: "astrid_identity_link", req: `{"platform":"d","platform_user_id":"1","astrid_user_id":"x"}`, trap: "invalid link request: missing field `method`"},
		{name: "unlink wrong type", fn: "astrid_identity_unlink", req: `{"platform":"d","platform_user_id":7}`, trap: "invalid unlink request: platform_user_id: want a string, got a number"},
		{name: "create_user wrong type", fn: "astrid_identity_create_user", req: `{"display_name":true}`, trap: "invalid create_user request: display_name: want a string or null, got a boolean"},
		{name: "list_links missing field", fn: "astrid_identity_list_links", req: `{}`, trap: "invalid list_links request: missing field `astrid_user_id`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := callRaw(t, admin, tc.fn, []byte(tc.req))
			switch {
			case tc.trap != "" && (err == nil || !strings.Contains(err.Error(), tc.trap)):
				t.Fatalf("%s: %s, %v; want a trap with %q", tc.fn, out, err, tc.trap)
			case tc.trap == "" && (err != nil || string(out) != tc.want):
				t.Fatalf("%s:\n got  %s, %v\n want %s", tc.fn, out, err, tc.want)
			}
		})
	}
}
