package astrid

import (
	"encoding/json"
	"fmt"
	"time"
)

// Identity: the host's users and the links from platform identities (a Discord user id, a
// Telegram handle) to them (astrid_identity_* host functions). The store is the host's, shared
// by all its capsules and kept across restarts. What a capsule may do is its manifest's
// [capabilities] identity: "resolve" (ResolveIdentity), "link" (also LinkIdentity,
// UnlinkIdentity, ListIdentityLinks) or "admin" (also CreateUser):
//
//	[capabilities]
//	identity = ["link"]
//
// The host's refusals (a capability not declared, an empty or invalid field, a user that does
// not exist) are returned as a *HostError with the host's message, such as "storage error:
// invalid input: platform must not be empty". Platform names are trimmed and lower-cased by the
// host; platforms, platform user ids, methods and display names are at most
// MaxIdentityFieldBytes and may not contain '/' or NUL.

// MaxIdentityFieldBytes bounds a platform, a platform user id, a link method and a display
// name: 512 bytes (the host refuses longer ones).
const MaxIdentityFieldBytes = 512

// IdentityUser is a user a platform identity resolves to.
type IdentityUser struct {
	// UserID is the user's id, a UUID.
	UserID string
	// DisplayName is the user's display name, "" when it has none.
	DisplayName string
}

// IdentityLink is a platform identity's link to a user.
type IdentityLink struct {
	Platform       string    // the platform, trimmed and lower-cased ("discord")
	PlatformUserID string    // the user's id on the platform
	AstridUserID   string    // the user it is linked to (a UUID)
	LinkedAt       time.Time // when it was linked
	Method         string    // how it was established ("chat_command", "system", ...)
}

// identityLinkJSON is a link as the host writes it.
type identityLinkJSON struct {
	Platform       string `json:"platform"`
	PlatformUserID string `json:"platform_user_id"`
	AstridUserID   string `json:"astrid_user_id"`
	LinkedAt       string `json:"linked_at"`
	Method         string `json:"method"`
}

func (l identityLinkJSON) link(fn string) (IdentityLink, error) {
	t, err := time.Parse(time.RFC3339Nano, l.LinkedAt)
	if err != nil {
		return IdentityLink{}, fmt.Errorf("astrid: %s: linked_at %.60q is not RFC 3339: %w", fn, l.LinkedAt, err)
	}
	return IdentityLink{Platform: l.Platform, PlatformUserID: l.PlatformUserID, AstridUserID: l.AstridUserID, LinkedAt: t, Method: l.Method}, nil
}

// identityAnswer is the answer of every identity function but resolve.
type identityAnswer struct {
	OK      bool               `json:"ok"`
	Error   *string            `json:"error"`
	UserID  *string            `json:"user_id"`
	Removed *bool              `json:"removed"`
	Link    *identityLinkJSON  `json:"link"`
	Links   []identityLinkJSON `json:"links"`
}

// callIdentity sends req to the identity function fn and decodes its answer; a refusal is a
// *HostError.
func callIdentity(fn string, host func(uint64) uint64, req any) (identityAnswer, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return identityAnswer{}, err
	}
	var a identityAnswer
	if err := decodeResult(fn, callHost(host, b), &a); err != nil {
		return identityAnswer{}, err
	}
	if !a.OK {
		msg := fn + " failed"
		if a.Error != nil {
			msg = *a.Error
		}
		return identityAnswer{}, &HostError{Func: fn, Message: msg}
	}
	return a, nil
}

// ResolveIdentity returns the user the platform identity is linked to, and false when it is
// linked to none. It needs identity "resolve" or higher.
func ResolveIdentity(platform, platformUserID string) (IdentityUser, bool, error) {
	const fn = "astrid_identity_resolve"
	b, err := json.Marshal(map[string]string{"platform": platform, "platform_user_id": platformUserID})
	if err != nil {
		return IdentityUser{}, false, err
	}
	var r struct {
		Found       bool    `json:"found"`
		UserID      *string `json:"user_id"`
		DisplayName *string `json:"display_name"`
		Error       *string `json:"error"`
	}
	if err := decodeResult(fn, callHost(hostIdentityResolve, b), &r); err != nil {
		return IdentityUser{}, false, err
	}
	switch {
	case r.Found && r.UserID == nil:
		return IdentityUser{}, false, fmt.Errorf("astrid: %s: the host answered found without a user_id", fn)
	case r.Found:
		u := IdentityUser{UserID: *r.UserID}
		if r.DisplayName != nil {
			u.DisplayName = *r.DisplayName
		}
		return u, true, nil
	case r.Error != nil:
		return IdentityUser{}, false, &HostError{Func: fn, Message: *r.Error}
	}
	return IdentityUser{}, false, nil
}

// LinkIdentity links the platform identity to the user astridUserID (which must exist),
// replacing its earlier link, and returns the link. method says how the link was established.
// It needs identity "link" or higher.
func LinkIdentity(platform, platformUserID, astridUserID, method string) (IdentityLink, error) {
	const fn = "astrid_identity_link"
	a, err := callIdentity(fn, hostIdentityLink, map[string]string{"platform": platform,
		"platform_user_id": platformUserID, "astrid_user_id": astridUserID, "method": method})
	if err != nil {
		return IdentityLink{}, err
	}
	if a.Link == nil {
		return IdentityLink{}, fmt.Errorf("astrid: %s: the host answered ok without the link", fn)
	}
	return a.Link.link(fn)
}

// UnlinkIdentity removes the platform identity's link and reports whether there was one. It
// needs identity "link" or higher.
func UnlinkIdentity(platform, platformUserID string) (bool, error) {
	a, err := callIdentity("astrid_identity_unlink", hostIdentityUnlink, map[string]string{"platform": platform, "platform_user_id": platformUserID})
	if err != nil {
		return false, err
	}
	return a.Removed != nil && *a.Removed, nil
}

// CreateUser creates a user and returns its id (a UUID); displayName "" creates one without a
// display name. It needs identity "admin".
func CreateUser(displayName string) (string, error) {
	const fn = "astrid_identity_create_user"
	req := map[string]*string{"display_name": nil}
	if displayName != "" {
		req["display_name"] = &displayName
	}
	a, err := callIdentity(fn, hostIdentityCreateUser, req)
	if err != nil {
		return "", err
	}
	if a.UserID == nil {
		return "", fmt.Errorf("astrid: %s: the host answered ok without the user_id", fn)
	}
	return *a.UserID, nil
}

// ListIdentityLinks returns the links to the user astridUserID, ordered by platform and
// platform user id. It needs identity "link" or higher.
func ListIdentityLinks(astridUserID string) ([]IdentityLink, error) {
	const fn = "astrid_identity_list_links"
	a, err := callIdentity(fn, hostIdentityListLinks, map[string]string{"astrid_user_id": astridUserID})
	if err != nil {
		return nil, err
	}
	out := make([]IdentityLink, 0, len(a.Links))
	for _, l := range a.Links {
		link, err := l.link(fn)
		if err != nil {
			return nil, err
		}
		out = append(out, link)
	}
	return out, nil
}
