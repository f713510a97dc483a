package httpgate

import "errors"

// The kinds of error [Client.Do] returns, for errors.Is, so the caller can map a failure to its
// own error codes (the host maps them to gRPC codes). Every error Do returns for one of these
// reasons wraps exactly one of them and carries a message meant for the capsule's author.
var (
	// ErrNotAllowed: the URL's host (or a redirect's) is not in the allow-list, or every address
	// it resolves to is one capsules may not reach.
	ErrNotAllowed = errors.New("HTTP request not allowed")
	// ErrInvalid: the request itself is malformed: URL, scheme, method or header.
	ErrInvalid = errors.New("invalid HTTP request")
	// ErrTooLarge: the request or the response body exceeds MaxBodyBytes.
	ErrTooLarge = errors.New("HTTP body too large")
	// ErrTimeout: the request did not complete within Timeout (or the caller's deadline).
	ErrTimeout = errors.New("HTTP request timed out")
)

// gateError is an error of one of the kinds above with a message of its own: Error() is only the
// message (no "kind: " prefix), and errors.Is finds the kind through Unwrap.
type gateError struct {
	kind error
	msg  string
}

func (e *gateError) Error() string { return e.msg }
func (e *gateError) Unwrap() error { return e.kind }

func newError(kind error, msg string) error { return &gateError{kind: kind, msg: msg} }
