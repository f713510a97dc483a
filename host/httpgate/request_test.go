package httpgate

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestInvalidRequests covers the refusals made before any connection: each test URL's host is
// in the allow-list, so only the property under test can refuse it, and no traffic leaves.
func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		name    string
		req     Request
		kind    error
		message string
	}{
		{"no URL", Request{}, ErrInvalid, "has no URL"},
		{"unparsable URL", Request{URL: "http://[::1"}, ErrInvalid, "is not valid"},
		{"relative URL", Request{URL: "/path"}, ErrInvalid, "has no scheme"},
		{"ftp", Request{URL: "ftp://example.com/file"}, ErrInvalid, `scheme "ftp" is not supported; only http and https`},
		{"file", Request{URL: "file:///etc/passwd"}, ErrInvalid, `scheme "file"`},
		{"no host", Request{URL: "http:///path"}, ErrInvalid, "has no host"},
		{"TRACE", Request{URL: "http://example.com/", Method: "TRACE"}, ErrInvalid, "use one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"},
		{"CONNECT", Request{URL: "http://example.com/", Method: "CONNECT"}, ErrInvalid, `HTTP method "CONNECT" is not supported`},
		{"header name", Request{URL: "http://example.com/", Headers: map[string]string{"Bad Name": "x"}}, ErrInvalid, `header name "Bad Name"`},
		{"header CRLF", Request{URL: "http://example.com/", Headers: map[string]string{"X-A": "a\r\nX-Injected: 1"}}, ErrInvalid, "control characters"},
		{"header NUL", Request{URL: "http://example.com/", Headers: map[string]string{"X-A": "a\x00"}}, ErrInvalid, "control characters"},
		{"body too large", Request{URL: "http://example.com/", Method: "POST", Body: make([]byte, MaxBodyBytes+1)}, ErrTooLarge, "may not exceed 10485760 bytes (10 MiB)"},
		{"URL too long", Request{URL: "http://example.com/" + strings.Repeat("a", MaxURLBytes)}, ErrInvalid, "HTTP request URL is 8211 bytes; it may not exceed 8192 bytes (8 KiB)"},
		{"too many headers", Request{URL: "http://example.com/", Headers: manyHeaders(MaxRequestHeaders+1, 1)}, ErrInvalid, "HTTP request has 65 headers; it may have at most 64"},
		{"headers too large", Request{URL: "http://example.com/", Headers: manyHeaders(2, 40<<10)}, ErrInvalid, "HTTP request headers are 81926 bytes (names and values); they may not exceed 65536 bytes (64 KiB)"},
		{"host not listed", Request{URL: "http://example.org/"}, ErrNotAllowed, `HTTP request to "example.org" is not allowed`},
		{"port ignored, host still not listed", Request{URL: "http://evil-example.com:8080/"}, ErrNotAllowed, `"evil-example.com"`},
	}
	c := NewClient(Policy{AllowHosts: []string{"example.com", "::1"}})
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Do(context.Background(), tt.req)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Do = %v, want %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("message %q lacks %q", err, tt.message)
			}
		})
	}
}

func TestCheckMethod(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", http.MethodGet},
		{"get", http.MethodGet},
		{"Post", http.MethodPost},
		{"PUT", http.MethodPut},
		{"DELETE", http.MethodDelete},
		{"PATCH", http.MethodPatch},
		{"HEAD", http.MethodHead},
		{"OPTIONS", http.MethodOptions},
	}
	for _, tt := range tests {
		got, err := checkMethod(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("checkMethod(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestHeaderDropsHost(t *testing.T) {
	h, err := header(map[string]string{"Host": "internal.example", "x-token": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h["Host"]; ok {
		t.Errorf("Host header kept: %v", h)
	}
	if h.Get("X-Token") != "v" {
		t.Errorf("X-Token = %q", h.Get("X-Token"))
	}
}

func TestResponseHeaders(t *testing.T) {
	got := responseHeaders(http.Header{"Set-Cookie": {"a=1", "b=2"}, "Content-Type": {"text/plain"}})
	want := map[string]string{"set-cookie": "a=1, b=2", "content-type": "text/plain"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// manyHeaders returns n headers, … whose values are size bytes each.
func manyHeaders(n, size int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h["X-"+strconv.Itoa(i)] = strings.Repeat("v", size)
	}
	return h
}
