package astrid

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Upstream's HTTP host functions: astrid_http_request (HTTPSend) and the streams
// (HTTPStreamStart). They go through the same gate as the Extism kernel's http_request (Fetch):
// only hosts of [capabilities] net, never private or loopback addresses, 30 s, 10 MiB bodies.
// Fetch takes and returns bytes and reads the status and headers through the kernel; HTTPSend
// speaks upstream's JSON, whose bodies are UTF-8 text, for code ported from astrid-sdk's
// http::send. Either fails by trapping the call when the host refuses or the request fails.

// Limits of HTTPSend and HTTPStreamStart.
const (
	// MaxHTTPStreams is how many HTTP streams a capsule may have open at once (upstream's 4).
	MaxHTTPStreams = 4
	// MaxHTTPRequestBytes bounds the request as JSON (URL, headers and body): 10 MiB.
	MaxHTTPRequestBytes = 10 << 20
)

// astridHTTPRequest is the request astrid_http_request and astrid_http_stream_start read.
type astridHTTPRequest struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body,omitempty"`
}

// encodeAstridHTTPRequest encodes req and body for op, checking what the host would refuse
// less clearly.
func encodeAstridHTTPRequest(op string, req HTTPRequest, body string) ([]byte, error) {
	if req.URL == "" {
		return nil, fmt.Errorf("astrid: %s: empty URL", op)
	}
	if !utf8.ValidString(body) {
		return nil, fmt.Errorf("astrid: %s %s: the body is not UTF-8 text (upstream's request carries it as a JSON string); use Fetch for bytes", op, req.URL)
	}
	r := astridHTTPRequest{URL: req.URL, Method: req.Method, Headers: req.Headers}
	if r.Method == "" {
		r.Method = "GET"
	}
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	if body != "" {
		r.Body = &body
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("astrid: %s %s: encoding the request: %w", op, req.URL, err)
	}
	if err := checkLen(op, "request", len(b), MaxHTTPRequestBytes); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeAstridHTTPResponse decodes astrid_http_request's {"status","headers","body"}.
func decodeAstridHTTPResponse(b []byte) (*HTTPResponse, error) {
	var r struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("astrid: astrid_http_request: decoding the host's response %.200q: %w", b, err)
	}
	return &HTTPResponse{Status: r.Status, Headers: r.Headers, Body: []byte(r.Body)}, nil
}

// HTTPSend makes the request req, with body as its text body ("" for none), through
// astrid_http_request and returns the response whatever its status. The response body is
// text: the host refuses a body that is not UTF-8. HTTPSend returns an error, without calling
// the host, for an empty URL or a body that is not UTF-8.
func HTTPSend(req HTTPRequest, body string) (*HTTPResponse, error) {
	rb, err := encodeAstridHTTPRequest("HTTPSend", req, body)
	if err != nil {
		return nil, err
	}
	return decodeAstridHTTPResponse(callHost(hostHTTPRequest, rb))
}

// HTTPStream is a response whose body the capsule reads as it arrives, from HTTPStreamStart.
// It is an io.ReadCloser. Like a Subscription it outlives the call that started it, until
// Close or the end of the capsule instance; the host allows MaxHTTPStreams at once. Reads end
// (io.EOF) when the body ends and when the host unloads the capsule.
type HTTPStream struct {
	handle string
	// Status is the response's HTTP status code.
	Status int
	// Headers are the response's headers, one value per name.
	Headers map[string]string
	buf     []byte
	eof     bool
	closed  bool
}

// HTTPStreamStart sends req with body (text, "" for none) through astrid_http_stream_start and
// returns once the response's status and headers have arrived. Close the stream when done.
func HTTPStreamStart(req HTTPRequest, body string) (*HTTPStream, error) {
	rb, err := encodeAstridHTTPRequest("HTTPStreamStart", req, body)
	if err != nil {
		return nil, err
	}
	return decodeStreamStart(callHost(hostHTTPStreamStart, rb))
}

// decodeStreamStart decodes astrid_http_stream_start's {"handle","status","headers"}.
func decodeStreamStart(b []byte) (*HTTPStream, error) {
	var r struct {
		Handle  string            `json:"handle"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("astrid: astrid_http_stream_start: decoding the host's response %.200q: %w", b, err)
	}
	if r.Handle == "" {
		return nil, fmt.Errorf("astrid: astrid_http_stream_start: the host's response %.200q has no handle", b)
	}
	return &HTTPStream{handle: r.Handle, Status: r.Status, Headers: r.Headers}, nil
}

// errStreamClosed is the error of a read from a closed stream.
var errStreamClosed = errors.New("astrid: HTTPStream: read after Close")

// Next returns the next chunk of the body as the host received it, or nil and io.EOF once the
// body has ended. The host traps the call when a chunk takes longer than 120 s to arrive.
func (s *HTTPStream) Next() ([]byte, error) {
	if s.closed {
		return nil, errStreamClosed
	}
	if len(s.buf) > 0 {
		b := s.buf
		s.buf = nil
		return b, nil
	}
	if s.eof {
		return nil, io.EOF
	}
	b := callHost(hostHTTPStreamRead, []byte(s.handle))
	if len(b) == 0 {
		s.eof = true
		return nil, io.EOF
	}
	return b, nil
}

// Read reads the body into p, as io.Reader.
func (s *HTTPStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.buf) == 0 {
		b, err := s.Next()
		if err != nil {
			return 0, err
		}
		s.buf = b
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Close ends the stream and releases it in the host. Closing it again does nothing.
func (s *HTTPStream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.buf = nil
	h := AllocateString(s.handle)
	hostHTTPStreamClose(h.handle)
	h.Free()
	return nil
}
