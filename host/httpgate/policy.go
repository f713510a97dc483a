package httpgate

import (
	"fmt"
	"net/netip"
	"strings"
)

// Policy is what one capsule may reach over HTTP.
type Policy struct {
	// AllowHosts is the capsule's [capabilities] net list: an entry matches if it is "*", equals
	// the URL's host (case-insensitive, without port), or the host ends with "." + entry
	// (upstream's rule: "example.com" admits "api.example.com" but not "evil-example.com"). An IP
	// address host only matches an identical entry or "*", never by suffix.
	AllowHosts []string
	// AllowPrivate lets requests reach loopback, private, link-local, CGNAT, unspecified and
	// multicast addresses; off by default (SSRF rule). The host sets it only from an explicit
	// operator flag (--allow-private-network), used by tests.
	AllowPrivate bool
	// Remedy tells a refused capsule's operator how to allow a host, e.g. "list it in
	// [capabilities] net" for a capsule or "pass --allow-host" for a bare module. It ends the
	// not-allowed message when set.
	Remedy string
}

// normalHost lower-cases a host name and drops a trailing root dot ("Example.COM." → "example.com").
func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// allows reports whether host (a URL host without port, IPv6 without brackets) is in the allow-list.
func (p *Policy) allows(host string) bool {
	host = normalHost(host)
	if host == "" {
		return false
	}
	_, ipErr := netip.ParseAddr(host)
	isIP := ipErr == nil
	for _, e := range p.AllowHosts {
		e = normalHost(e)
		switch {
		case e == "":
			continue
		case e == "*", e == host:
			return true
		case !isIP && strings.HasSuffix(host, "."+e):
			return true
		}
	}
	return false
}

// notAllowed is the error for a host outside the allow-list; what is "HTTP request" or "HTTP
// redirect".
func (p *Policy) notAllowed(what, host string) error {
	lists := "it lists nothing, so the capsule may make no HTTP requests"
	if len(p.AllowHosts) > 0 {
		lists = "it lists: " + strings.Join(p.AllowHosts, ", ")
	}
	msg := fmt.Sprintf("%s to %q is not allowed: the capsule's allowed hosts do not include it (%s)", what, host, lists)
	if p.Remedy != "" {
		msg += "; to allow it, " + p.Remedy
	}
	return newError(ErrNotAllowed, msg)
}
