package httpgate

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestBlocked(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		// IPv4 ranges.
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"100.128.0.1", false},
		{"100.63.255.255", false},
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"169.254.169.254", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"172.15.255.255", false},
		{"192.168.1.1", true},
		{"192.169.0.1", false},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"240.0.0.1", true},
		{"255.1.2.3", true},
		{"255.255.255.255", true},
		{"8.8.8.8", false},
		{"93.184.216.34", false},
		{"1.1.1.1", false},
		// IPv6 ranges.
		{"::", true},
		{"::1", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"ff0e::1", true},
		{"2001:4860:4860::8888", false},
		{"2606:4700::1111", false},
		// IPv4-mapped forms are checked as IPv4.
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:192.168.0.1", true},
		{"::ffff:0.0.0.0", true},
		{"::ffff:8.8.8.8", false},
		// IPv4-compatible forms too.
		{"::127.0.0.1", true},
		{"::10.0.0.1", true},
		{"::169.254.169.254", true},
		{"::8.8.8.8", false},
		// NAT64 well-known prefix.
		{"64:ff9b::127.0.0.1", true},
		{"64:ff9b::10.0.0.1", true},
		{"64:ff9b::8.8.8.8", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := blocked(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("blocked(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if !blocked(netip.Addr{}) {
		t.Error("the zero Addr is not blocked")
	}
}

func TestUnwrap(t *testing.T) {
	tests := []struct{ in, want string }{
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"::127.0.0.1", "127.0.0.1"},
		{"64:ff9b::a00:1", "10.0.0.1"},
		{"::", "::"},
		{"::1", "::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"8.8.8.8", "8.8.8.8"},
	}
	for _, tt := range tests {
		if got := unwrap(netip.MustParseAddr(tt.in)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("unwrap(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestControlRefusesConnectedAddress checks the last line of defence: whatever resolved the name,
// the socket may not connect to a forbidden address.
func TestControlRefusesConnectedAddress(t *testing.T) {
	tests := []struct {
		address      string
		allowPrivate bool
		wantErr      bool
	}{
		{"127.0.0.1:80", false, true},
		{"[::1]:443", false, true},
		{"[::ffff:127.0.0.1]:80", false, true},
		{"[fe80::1%lo]:80", false, true},
		{"169.254.169.254:80", false, true},
		{"8.8.8.8:443", false, false},
		{"[2001:4860:4860::8888]:443", false, false},
		{"127.0.0.1:80", true, false},
		{"not-an-address", false, true},
	}
	for _, tt := range tests {
		d := newDialer(tt.allowPrivate)
		err := d.control("tcp", tt.address, nil)
		if (err != nil) != tt.wantErr {
			t.Errorf("control(%s, allowPrivate=%v) = %v, want error %v", tt.address, tt.allowPrivate, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrNotAllowed) {
				t.Errorf("control(%s) error %v is not ErrNotAllowed", tt.address, err)
			}
			if tt.address != "not-an-address" && !strings.Contains(err.Error(), privateRefusal) {
				t.Errorf("control(%s) error %q lacks %q", tt.address, err, privateRefusal)
			}
		}
	}
}

// TestDialFiltersResolvedAddresses: of a name's addresses only the permitted ones are dialled,
// in the resolver's order; a name with none is refused listing what it resolved to. The dial
// function is replaced, so nothing leaves the test.
func TestDialFiltersResolvedAddresses(t *testing.T) {
	tests := []struct {
		name         string
		resolved     []string
		allowPrivate bool
		wantDialled  []string
		wantRefusal  string
	}{
		{"public only", []string{"93.184.216.34"}, false, []string{"93.184.216.34:80"}, ""},
		{"private ones dropped", []string{"127.0.0.1", "93.184.216.34", "::1", "2606:2800::1", "10.0.0.1"}, false,
			[]string{"93.184.216.34:80", "[2606:2800::1]:80"}, ""},
		{"mapped answer unmapped", []string{"::ffff:93.184.216.34"}, false, []string{"93.184.216.34:80"}, ""},
		{"all private", []string{"127.0.0.1", "::ffff:10.0.0.1", "fd00::1"}, false, nil,
			`HTTP request to "rebind.example:80" refused: it resolves only to loopback/private addresses (127.0.0.1, 10.0.0.1, fd00::1), which capsules may not reach (DNS resolved to an unauthorized private or local IP address; astrid-host --allow-private-network lifts this, for tests)`},
		{"operator allows private", []string{"127.0.0.1", "::1"}, true, []string{"127.0.0.1:80", "[::1]:80"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDialer(tt.allowPrivate)
			d.lookup = func(context.Context, string, string) ([]netip.Addr, error) {
				var out []netip.Addr
				for _, s := range tt.resolved {
					out = append(out, netip.MustParseAddr(s))
				}
				return out, nil
			}
			var dialled []string
			d.dial = func(_ context.Context, _, address string) (net.Conn, error) {
				dialled = append(dialled, address)
				return nil, errors.New("test: not dialling")
			}
			_, err := d.DialContext(context.Background(), "tcp", "rebind.example:80")
			if tt.wantRefusal != "" {
				if !errors.Is(err, ErrNotAllowed) || err.Error() != tt.wantRefusal {
					t.Errorf("DialContext = %v\nwant %s", err, tt.wantRefusal)
				}
			} else if err == nil || errors.Is(err, ErrNotAllowed) {
				t.Errorf("DialContext = %v, want the test's dial error", err)
			}
			if !slices.Equal(dialled, tt.wantDialled) {
				t.Errorf("dialled %v, want %v", dialled, tt.wantDialled)
			}
		})
	}
}
