package httpgate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// privateRefusal is the upstream wording, kept in the message so the two runtimes' errors can be
// recognised alike.
const privateRefusal = "DNS resolved to an unauthorized private or local IP address"

// dialer opens the client's connections. It resolves the name itself, drops the addresses the
// SSRF rule forbids and dials only the remaining IP addresses; the net.Dialer's Control function
// checks the address of every socket again just before it connects, so no path (a resolver
// surprise, a literal, a later change) reaches a forbidden address.
type dialer struct {
	allowPrivate bool
	// lookup resolves a name (net.DefaultResolver.LookupNetIP); dial connects to an IP address
	// and port (a net.Dialer whose Control is d.control). Tests replace both.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	dial   func(ctx context.Context, network, address string) (net.Conn, error)
}

func newDialer(allowPrivate bool) *dialer {
	d := &dialer{allowPrivate: allowPrivate, lookup: net.DefaultResolver.LookupNetIP}
	nd := &net.Dialer{KeepAlive: 30 * time.Second, Control: d.control}
	d.dial = nd.DialContext
	return d
}

// control runs on each socket before connect with the literal IP address being connected to.
func (d *dialer) control(_, address string, _ syscall.RawConn) error {
	if d.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return newError(ErrNotAllowed, fmt.Sprintf("HTTP connection to %q refused: not an IP address and port", address), ErrPrivateAddress)
	}
	if blocked(ap.Addr()) {
		return refusedLiteral(address, ap.Addr())
	}
	return nil
}

// DialContext is the http.Transport's dial function.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("HTTP connection to %q: %v", address, err))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !d.allowPrivate && blocked(ip) {
			return nil, refusedLiteral(address, ip)
		}
		return d.dial(ctx, network, address)
	}
	ips, err := d.lookup(ctx, ipNetwork(network), host)
	if err != nil {
		return nil, fmt.Errorf("HTTP request to %q: resolving %s: %w", address, host, err)
	}
	var allowed, refused []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap() // the resolver reports IPv4 answers as IPv4-mapped IPv6
		if !d.allowPrivate && blocked(ip) {
			refused = append(refused, ip)
		} else {
			allowed = append(allowed, ip)
		}
	}
	if len(allowed) == 0 {
		if len(refused) == 0 {
			return nil, fmt.Errorf("HTTP request to %q: %s has no IP address", address, host)
		}
		return nil, newError(ErrNotAllowed, fmt.Sprintf(
			"HTTP request to %q refused: it resolves only to loopback/private addresses (%s), which capsules may not reach (%s; astrid-host --allow-private-network lifts this, for tests)",
			address, joinAddrs(refused), privateRefusal), ErrPrivateAddress)
	}
	// Try the permitted addresses in the resolver's order, as net.Dialer would.
	var errs []error
	for _, ip := range allowed {
		conn, err := d.dial(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("HTTP request to %q: %w", address, errors.Join(errs...))
}

// refusedLiteral is the error for a connection to a forbidden IP address.
func refusedLiteral(address string, ip netip.Addr) error {
	return newError(ErrNotAllowed, fmt.Sprintf(
		"HTTP request to %q refused: %s is a loopback/private address, which capsules may not reach (%s; astrid-host --allow-private-network lifts this, for tests)",
		address, ip, privateRefusal), ErrPrivateAddress)
}

// ipNetwork maps a dial network to the resolver's: "tcp4" → "ip4", "tcp6" → "ip6", else "ip".
func ipNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
