package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/internal/identity"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// The identity host functions (astrid_identity_*), as upstream 0.5's host/identity.rs: one
// identity store for every capsule of the host (package identity, in the host's database), each
// operation gated by the capsule's [capabilities] identity, where admin implies link and link
// implies resolve: resolve needs resolve; link, unlink and list_links need link; create_user
// needs admin. A request that is not the operation's JSON traps; every other failure (the gate,
// an invalid field, a missing user) is the answer's "error", in upstream's words.

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_IDENTITY_RESOLVE] = identityResolve
	hostCallHandlers[pb.HostOp_HOST_OP_IDENTITY_LINK] = identityLink
	hostCallHandlers[pb.HostOp_HOST_OP_IDENTITY_UNLINK] = identityUnlink
	hostCallHandlers[pb.HostOp_HOST_OP_IDENTITY_CREATE_USER] = identityCreateUser
	hostCallHandlers[pb.HostOp_HOST_OP_IDENTITY_LIST_LINKS] = identityListLinks
}

// Identity capability levels, lowest first: each implies those before it.
var identityLevels = []string{"resolve", "link", "admin"}

// checkIdentity is upstream's ManifestSecurityGate::check_identity: whether the capsule's
// [capabilities] identity grants required (or a level above it), else upstream's refusal.
func (i *Instance) checkIdentity(required string) error {
	declared := i.manifest.Capabilities.Identity
	need := slices.Index(identityLevels, required)
	for _, d := range declared {
		if d == required || need >= 0 && slices.Index(identityLevels, d) > need {
			return nil
		}
	}
	return fmt.Errorf("capsule '%s' denied: identity operation '%s' not declared in manifest (has: %s)", i.ID(), required, rustDebugStrings(declared))
}

// rustDebugStrings writes a list of strings as Rust's {:?} does: ["a", "b"].
func rustDebugStrings(list []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for k, s := range list {
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('"')
		for _, r := range s {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\r':
				b.WriteString(`\r`)
			case r == '\t':
				b.WriteString(`\t`)
			case r == 0:
				b.WriteString(`\0`)
			case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
				fmt.Fprintf(&b, `\u{%x}`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String()
}

// identityStore is the host's identity store; upstream's "identity store not available" when
// the host's database cannot be opened.
func (s *hostServices) identityStore() (*identity.Store, error) {
	st, err := s.inst.host.kv.Store()
	if err != nil {
		return nil, guestFailed("identity store not available: %v", err)
	}
	return identity.New(st), nil
}

// identityFailure is how upstream wraps a gate refusal or a store error in an answer: as its
// StorageError::Internal ("storage error: ...").
func identityFailure(err error) string { return "storage error: " + err.Error() }

// identityResolveResponse is upstream's ResolveResponse.
type identityResolveResponse struct {
	Found       bool    `json:"found"`
	UserID      *string `json:"user_id,omitempty"`
	DisplayName *string `json:"display_name,omitempty"`
	Error       *string `json:"error,omitempty"`
}

// identityOKResponse is upstream's OkResponse.
type identityOKResponse struct {
	OK      bool             `json:"ok"`
	Error   *string          `json:"error,omitempty"`
	UserID  *string          `json:"user_id,omitempty"`
	Removed *bool            `json:"removed,omitempty"`
	Link    *identity.Link   `json:"link,omitempty"`
	Links   *[]identity.Link `json:"links,omitempty"`
}

func okFailed(msg string) ([]byte, error) {
	return serdejson.Marshal(identityOKResponse{OK: false, Error: &msg})
}

// identityResolve: astrid_identity_resolve({"platform", "platform_user_id"}) →
// {"found", "user_id"?, "display_name"?, "error"?}.
func identityResolve(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	f, err := guestJSONFields(args[0], "platform", "platform_user_id")
	if err != nil {
		return nil, guestFailed("invalid resolve request: %v", err)
	}
	st, err := s.identityStore()
	if err != nil {
		return nil, err
	}
	var resp identityResolveResponse
	if err := s.inst.checkIdentity("resolve"); err != nil {
		msg := identityFailure(err)
		resp.Error = &msg
	} else if u, err := st.Resolve(f["platform"], f["platform_user_id"]); err != nil {
		msg := identityFailure(err)
		resp.Error = &msg
	} else if u != nil {
		resp = identityResolveResponse{Found: true, UserID: &u.ID, DisplayName: u.DisplayName}
	}
	return serdejson.Marshal(resp)
}

// identityOK performs an operation that answers upstream's OkResponse, once the store is at
// hand and the capsule's identity level allows it: op's refusal is the answer's "error".
func (s *hostServices) identityOK(level string, op func(*identity.Store) (identityOKResponse, error)) ([]byte, error) {
	st, err := s.identityStore()
	if err != nil {
		return nil, err
	}
	if err := s.inst.checkIdentity(level); err != nil {
		return okFailed(identityFailure(err))
	}
	resp, err := op(st)
	if err != nil {
		return okFailed(identityFailure(err))
	}
	resp.OK = true
	return serdejson.Marshal(resp)
}

// identityLink: astrid_identity_link({"platform", "platform_user_id", "astrid_user_id",
// "method"}) → {"ok", "link"?, "error"?}.
func identityLink(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	f, err := guestJSONFields(args[0], "platform", "platform_user_id", "astrid_user_id", "method")
	if err != nil {
		return nil, guestFailed("invalid link request: %v", err)
	}
	user, err := identity.ParseUUID(f["astrid_user_id"])
	if err != nil {
		return okFailed("invalid UUID: " + err.Error())
	}
	return s.identityOK("link", func(st *identity.Store) (identityOKResponse, error) {
		l, err := st.Link(f["platform"], f["platform_user_id"], user, f["method"])
		return identityOKResponse{Link: &l}, err
	})
}

// identityUnlink: astrid_identity_unlink({"platform", "platform_user_id"}) → {"ok",
// "removed"?, "error"?}.
func identityUnlink(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	f, err := guestJSONFields(args[0], "platform", "platform_user_id")
	if err != nil {
		return nil, guestFailed("invalid unlink request: %v", err)
	}
	return s.identityOK("link", func(st *identity.Store) (identityOKResponse, error) {
		removed, err := st.Unlink(f["platform"], f["platform_user_id"])
		return identityOKResponse{Removed: &removed}, err
	})
}

// identityCreateUser: astrid_identity_create_user({"display_name"?}) → {"ok", "user_id"?,
// "error"?}. display_name may be absent or null.
func identityCreateUser(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	name, err := optionalStringField(args[0], "display_name")
	if err != nil {
		return nil, guestFailed("invalid create_user request: %v", err)
	}
	return s.identityOK("admin", func(st *identity.Store) (identityOKResponse, error) {
		u, err := st.CreateUser(name)
		return identityOKResponse{UserID: &u.ID}, err
	})
}

// identityListLinks: astrid_identity_list_links({"astrid_user_id"}) → {"ok", "links"?,
// "error"?}.
func identityListLinks(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	f, err := guestJSONFields(args[0], "astrid_user_id")
	if err != nil {
		return nil, guestFailed("invalid list_links request: %v", err)
	}
	user, err := identity.ParseUUID(f["astrid_user_id"])
	if err != nil {
		return okFailed("invalid UUID: " + err.Error())
	}
	return s.identityOK("link", func(st *identity.Store) (identityOKResponse, error) {
		links, err := st.ListLinks(user)
		return identityOKResponse{Links: &links}, err
	})
}

// optionalStringField decodes a guest's JSON object with one optional string field (absent or
// null: nil), as serde decodes an Option<String> field.
func optionalStringField(raw []byte, name string) (*string, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("the request is not valid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("want a JSON object with the optional string field %s", name)
	}
	v, ok := obj[name]
	if !ok || string(v) == "null" {
		return nil, nil
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return nil, fmt.Errorf("%s: want a string or null, got %s", name, kindOf(v))
	}
	return &s, nil
}
