package httpgate

import (
	"net/netip"
)

// blockedPrefixes are the networks a capsule may not reach unless Policy.AllowPrivate is set:
// everything that leads to this machine, its local networks or nowhere on the public internet.
// IPv6 forms that embed an IPv4 address are unwrapped before the check (see unwrap).
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", includes the unspecified 0.0.0.0
	netip.MustParsePrefix("10.0.0.0/8"),     // private
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, includes cloud metadata 169.254.169.254
	netip.MustParsePrefix("172.16.0.0/12"),  // private
	netip.MustParsePrefix("192.168.0.0/16"), // private
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, includes 255/8 and the broadcast address
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// Prefixes of IPv6 addresses whose low 32 bits are an IPv4 address that the packet may end up at.
var (
	v4CompatPrefix = netip.MustParsePrefix("::/96")        // IPv4-compatible (deprecated) ::a.b.c.d
	nat64Prefix    = netip.MustParsePrefix("64:ff9b::/96") // NAT64 well-known prefix
)

// unwrap returns the IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
// (::a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address, and any other address unchanged (without
// its zone). :: and ::1 are their own IPv6 addresses, not IPv4-compatible ones.
func unwrap(a netip.Addr) netip.Addr {
	a = a.WithZone("")
	if a.Is4In6() {
		return a.Unmap()
	}
	if a.Is6() && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback() &&
		(v4CompatPrefix.Contains(a) || nat64Prefix.Contains(a)) {
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// blocked reports whether a is an address capsules may not reach under the SSRF rule. An invalid
// address is blocked.
func blocked(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	a = unwrap(a)
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
