package httpgate

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyAllows(t *testing.T) {
	tests := []struct {
		name  string
		allow []string
		host  string
		want  bool
	}{
		{"exact", []string{"example.com"}, "example.com", true},
		{"subdomain by suffix", []string{"example.com"}, "api.example.com", true},
		{"deep subdomain", []string{"example.com"}, "a.b.example.com", true},
		{"look-alike is not a subdomain", []string{"example.com"}, "evil-example.com", false},
		{"suffix without a dot", []string{"example.com"}, "notexample.com", false},
		{"parent of an entry", []string{"api.example.com"}, "example.com", false},
		{"sibling of an entry", []string{"api.example.com"}, "www.example.com", false},
		{"star", []string{"*"}, "anything.example.org", true},
		{"star with IP", []string{"*"}, "127.0.0.1", true},
		{"host case", []string{"example.com"}, "API.Example.COM", true},
		{"entry case", []string{"Example.COM"}, "api.example.com", true},
		{"trailing root dot", []string{"example.com"}, "example.com.", true},
		{"second entry", []string{"api.x.com", "example.com"}, "example.com", true},
		{"empty list", nil, "example.com", false},
		{"empty entry matches nothing", []string{""}, "example.com", false},
		{"empty host", []string{"example.com"}, "", false},
		{"IP exact", []string{"127.0.0.1"}, "127.0.0.1", true},
		{"IP never by suffix", []string{"0.1"}, "127.0.0.1", false},
		{"IPv6 exact", []string{"::1"}, "::1", true},
		{"other host", []string{"api.x.com"}, "example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{AllowHosts: tt.allow}
			if got := p.allows(tt.host); got != tt.want {
				t.Errorf("Policy{%q}.allows(%q) = %v, want %v", tt.allow, tt.host, got, tt.want)
			}
		})
	}
}

func TestNotAllowedMessage(t *testing.T) {
	tests := []struct {
		allow []string
		want  string
	}{
		{[]string{"api.x.com"}, `HTTP request to "example.org" is not allowed: the capsule's allowed hosts do not include it (it lists: api.x.com)`},
		{nil, `HTTP request to "example.org" is not allowed: the capsule's allowed hosts do not include it (it lists nothing, so the capsule may make no HTTP requests)`},
	}
	for _, tt := range tests {
		p := Policy{AllowHosts: tt.allow}
		err := p.notAllowed("HTTP request", "example.org")
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("error %v is not ErrNotAllowed", err)
		}
		if err.Error() != tt.want {
			t.Errorf("message\n got %s\nwant %s", err, tt.want)
		}
		if strings.Contains(err.Error(), ErrNotAllowed.Error()) {
			t.Errorf("message repeats the kind: %s", err)
		}
	}
}

func TestNotAllowedRemedy(t *testing.T) {
	p := Policy{AllowHosts: []string{"api.x.com"}, Remedy: "pass --allow-host to astrid-host call"}
	err := p.notAllowed("HTTP request", "example.org")
	want := `HTTP request to "example.org" is not allowed: the capsule's allowed hosts do not include it (it lists: api.x.com); to allow it, pass --allow-host to astrid-host call`
	if err == nil || err.Error() != want {
		t.Fatalf("message\n got %v\nwant %s", err, want)
	}
}
