package httpgate

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Request is an HTTP request a capsule asks for.
type Request struct {
	// URL is an absolute http or https URL.
	URL string
	// Method is one of Methods; empty means GET. Case does not matter.
	Method string
	// Headers are sent as given, one value each. A Host header is ignored: the URL's host is the
	// one the allow-list admitted, so it is the one addressed.
	Headers map[string]string
	// Body is sent when non-empty; at most MaxBodyBytes.
	Body []byte
}

// Response is what the server answered.
type Response struct {
	// Status is the HTTP status code of the final response (after redirects).
	Status int
	// Headers maps each lower-case header name (as upstream Astrid reports them) to its value;
	// several values of one header are joined with ", ".
	Headers map[string]string
	// Body is the whole response body (at most MaxBodyBytes).
	Body []byte
}

// Methods are the HTTP methods a capsule may use (upstream's list).
var Methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions}

// checkMethod returns the canonical (upper-case) method, GET for "".
func checkMethod(m string) (string, error) {
	if m == "" {
		return http.MethodGet, nil
	}
	up := strings.ToUpper(m)
	if !slices.Contains(Methods, up) {
		return "", newError(ErrInvalid, fmt.Sprintf("HTTP method %q is not supported; use one of %s", m, strings.Join(Methods, ", ")))
	}
	return up, nil
}

// checkURL parses an absolute http(s) URL with a host. Messages name the scheme and host but not
// the path or query, which may carry the capsule's secrets and end up in the host's log.
func checkURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, newError(ErrInvalid, "HTTP request has no URL")
	}
	if len(raw) > MaxURLBytes {
		return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request URL is %d bytes; it may not exceed %d bytes (8 KiB)", len(raw), MaxURLBytes))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request URL is not valid: %v", unwrapURLError(err)))
	}
	if err := checkScheme(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkScheme requires http or https and a host; it applies to redirect targets too.
func checkScheme(u *url.URL) error {
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return newError(ErrInvalid, "HTTP request URL has no scheme; only absolute http:// and https:// URLs are supported")
	default:
		return newError(ErrInvalid, fmt.Sprintf("HTTP request URL scheme %q is not supported; only http and https are", u.Scheme))
	}
	if u.Hostname() == "" {
		return newError(ErrInvalid, fmt.Sprintf("HTTP request URL %s:// has no host", u.Scheme))
	}
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// header builds the request header, refusing names and values that cannot be sent as they are
// (a value with CR or LF would otherwise be an injected header) and more headers than
// MaxRequestHeaders or MaxRequestHeaderBytes allow.
func header(h map[string]string) (http.Header, error) {
	if len(h) > MaxRequestHeaders {
		return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request has %d headers; it may have at most %d", len(h), MaxRequestHeaders))
	}
	size := 0
	for k, v := range h {
		size += len(k) + len(v)
	}
	if size > MaxRequestHeaderBytes {
		return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request headers are %d bytes (names and values); they may not exceed %d bytes (64 KiB)", size, MaxRequestHeaderBytes))
	}
	out := make(http.Header, len(h))
	// Sorted, so that two keys differing only in case resolve the same way every time.
	for _, k := range slices.Sorted(maps.Keys(h)) {
		v := h[k]
		if !validHeaderName(k) {
			return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request header name %q is not a valid header name", k))
		}
		if !validHeaderValue(v) {
			return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request header %q has a value with control characters (CR, LF or NUL are not allowed)", k))
		}
		if strings.EqualFold(k, "Host") {
			continue
		}
		out.Set(k, v)
	}
	return out, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses the bytes that would break the header framing: CR, LF, NUL and other
// control characters except horizontal tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// responseHeaders flattens h into lower-case names with values joined by ", ".
func responseHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		out[strings.ToLower(k)] = strings.Join(vs, ", ")
	}
	return out
}
