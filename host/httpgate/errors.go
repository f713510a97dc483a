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
	// ErrTimeout: the request did not complete within Timeout (or the caller's deadline), or a
	// stream's chunk did not arrive within StreamReadTimeout.
	ErrTimeout = errors.New("HTTP request timed out")
	// ErrPrivateAddress: the connection would go to an address the SSRF rule forbids. Such an
	// error is also ErrNotAllowed; this kind tells it apart from a host outside the allow-list
	// (the first is found while connecting, the second before anything is sent).
	ErrPrivateAddress = errors.New("HTTP connection to a private address refused")
	// ErrStreamLimit: the client already holds MaxStreams open streams.
	ErrStreamLimit = errors.New("HTTP stream limit reached")
	// ErrUnknownStream: no open stream of this client has the handle.
	ErrUnknownStream = errors.New("HTTP stream handle not found")
)

// gateError is an error of one of the kinds above with a message of its own: Error() is only the
// message (no "kind: " prefix), and errors.Is finds the kind through Unwrap.
type gateError struct {
	kinds []error
	msg   string
}

func (e *gateError) Error() string   { return e.msg }
func (e *gateError) Unwrap() []error { return e.kinds }

// newError returns an error of kind (and of the further kinds also) with message msg.
func newError(kind error, msg string, also ...error) error {
	return &gateError{kinds: append([]error{kind}, also...), msg: msg}
}
