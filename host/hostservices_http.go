package host

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/host/httpgate"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// Http performs an HTTP request for the guest (extism's http_request, astrid_http_request). All
// the rules are the host's: the instance's client admits only the hosts in the capsule's
// [capabilities] net, refuses private addresses unless the operator allowed them, and enforces the
// time and size limits (see package httpgate). A refusal or failure is an error status whose
// message the shim turns into the guest's trap text.
func (s *hostServices) Http(ctx context.Context, req *pb.HttpRequest) (_ *pb.HttpResponse, err error) {
	defer func() { s.recordHostCall("http_request", 1, failedIf(err)) }()
	client := s.inst.httpClient()
	if client == nil {
		return nil, status.Error(codes.Unavailable, "HTTP requests are not available: the capsule is stopping")
	}
	greq := httpgate.Request{URL: req.Url, Method: req.Method, Headers: req.Headers, Body: req.Body}
	start := time.Now()
	resp, err := client.Do(ctx, greq)
	s.logHTTP("http request", greq, resp, err, start)
	if err != nil {
		return nil, status.Error(httpErrorCode(err), err.Error())
	}
	return &pb.HttpResponse{Status: int32(resp.Status), Headers: resp.Headers, Body: resp.Body}, nil
}

// logHTTP logs a capsule's request at debug level: only the method, host, status and sizes
// (bodies, header values and the URL's path and query may carry the capsule's secrets). resp is
// nil when err is set.
func (s *hostServices) logHTTP(what string, req httpgate.Request, resp *httpgate.Response, err error, start time.Time) {
	method, host := logMethod(req.Method), logHost(req.URL)
	if err != nil {
		s.inst.log.Debug(what+" failed", "method", method, "host", host, "sent_bytes", len(req.Body),
			"code", httpErrorCode(err), "error", err, "took", time.Since(start))
		return
	}
	s.inst.log.Debug(what, "method", method, "host", host, "status", resp.Status,
		"sent_bytes", len(req.Body), "received_bytes", len(resp.Body), "took", time.Since(start))
}

// httpClient returns the client that performs the capsule's HTTP requests and holds its
// streams, under its policy: the hosts in [capabilities] net and the operator's --allow-host,
// and the host's private-network setting. It returns nil once the instance is stopping or
// closeHTTP has run.
func (i *Instance) httpClient() *httpgate.Client {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.stopping || i.httpDone {
		return nil
	}
	if i.http == nil {
		remedy := "list it in [capabilities] net of " + i.manifest.Path
		if i.manifest.Path == "" {
			remedy = "pass --allow-host to astrid-host call"
		}
		i.http = httpgate.NewClient(httpgate.Policy{
			AllowHosts:   append(slices.Clone(i.manifest.Capabilities.Net), i.opts.AllowHosts...),
			AllowPrivate: i.host.cfg.AllowPrivateNetwork,
			Remedy:       remedy,
		})
	}
	return i.http
}

// closeHTTP ends the instance's requests in flight and closes its streams (a read waiting on one
// returns at once), and waits for them, so no connection or goroutine of the capsule's HTTP
// outlives it; later requests fail. It is called when the instance stops or crashes.
func (i *Instance) closeHTTP() {
	i.mu.Lock()
	client := i.http
	i.httpDone = true
	i.mu.Unlock()
	if client != nil {
		client.Close()
	}
}

// httpErrorCode maps httpgate's error kinds to gRPC codes; any other failure (connection refused,
// TLS, DNS, the request cancelled) is Unavailable.
func httpErrorCode(err error) codes.Code {
	switch {
	case errors.Is(err, httpgate.ErrNotAllowed):
		return codes.PermissionDenied
	case errors.Is(err, httpgate.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, httpgate.ErrTooLarge):
		return codes.ResourceExhausted
	case errors.Is(err, httpgate.ErrTimeout):
		return codes.DeadlineExceeded
	default:
		return codes.Unavailable
	}
}

// logMethod is the method as it goes into the log: GET for empty, and not the guest's whole
// string when it is not a method at all.
func logMethod(m string) string {
	switch {
	case m == "":
		return http.MethodGet
	case len(m) > 16:
		return m[:16] + "…"
	}
	return m
}

// logHost is the URL's host[:port] for the log, or "" when the URL does not parse; never the
// path or query.
func logHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// ---------------------------------------------------------------------------------------------
// astrid_http_request and the stream functions (hostservices_httpstream.go) take upstream's
// request JSON and answer in upstream's shapes and words; the rules are package httpgate's, the
// same client and gate as http_request above.

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_HTTP_REQUEST] = astridHTTPRequest
}

// astridHTTPRequestJSON is upstream's request of astrid_http_request and
// astrid_http_stream_start.
type astridHTTPRequestJSON struct {
	URL     *string           `json:"url"`
	Method  *string           `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body"`
}

// parseAstridHTTPRequest decodes upstream's request JSON: "url" required, "method" GET when
// absent, "headers" and "body" (a string) optional. Failures are upstream's texts.
func parseAstridHTTPRequest(raw []byte) (httpgate.Request, error) {
	if !utf8.Valid(raw) {
		return httpgate.Request{}, guestFailed("failed to parse request as utf8: the request is not valid UTF-8")
	}
	var j astridHTTPRequestJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return httpgate.Request{}, guestFailed(`invalid http request json: %v (want {"url": "...", "method": "GET", "headers": {"name": "value"}, "body": "..."})`, err)
	}
	if j.URL == nil {
		return httpgate.Request{}, guestFailed("invalid http request json: missing field `url`")
	}
	r := httpgate.Request{URL: *j.URL, Method: http.MethodGet, Headers: j.Headers}
	if j.Method != nil {
		r.Method = *j.Method
		if r.Method == "" {
			// upstream names the empty method unsupported rather than defaulting it
			return httpgate.Request{}, guestFailed("unsupported http method: (use one of %s)", strings.Join(httpgate.Methods, ", "))
		}
	}
	if j.Body != nil {
		r.Body = []byte(*j.Body)
	}
	return r, nil
}

// astridHTTPFailure is what a guest's astrid_http_request (sending "http request") or
// astrid_http_stream_start (sending "http stream request") traps with when the gate refuses or
// the request fails: upstream's words for the stage that failed, then the gate's message.
func astridHTTPFailure(err error, sending string) error {
	switch {
	case errors.Is(err, httpgate.ErrPrivateAddress):
		// Found while connecting, as upstream's resolver finds it.
		return guestFailed("%s failed: %s", sending, err)
	case errors.Is(err, httpgate.ErrNotAllowed):
		return guestFailed("security denied network access: %s", err)
	case errors.Is(err, httpgate.ErrInvalid), errors.Is(err, httpgate.ErrStreamLimit):
		return guestFailed("%s", err)
	case errors.Is(err, httpgate.ErrTooLarge):
		return guestFailed("failed to read http response body: %s", err)
	default:
		return guestFailed("%s failed: %s", sending, err)
	}
}

// astridHTTPResponse is upstream's answer of astrid_http_request.
type astridHTTPResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// astridHTTPRequest: astrid_http_request(request) → {"status", "headers", "body"}. The body
// must be UTF-8 (upstream's rule: it is a JSON string) and at most 10 MiB; every failure traps.
func astridHTTPRequest(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	req, err := parseAstridHTTPRequest(args[0])
	if err != nil {
		return nil, err
	}
	client := s.inst.httpClient()
	if client == nil {
		return nil, guestFailed("http request failed: the capsule is stopping")
	}
	start := time.Now()
	resp, err := client.Do(ctx, req)
	s.logHTTP("http request", req, resp, err, start)
	if err != nil {
		return nil, astridHTTPFailure(err, "http request")
	}
	if !utf8.Valid(resp.Body) {
		return nil, guestFailed("failed to read http response body: response body is not valid UTF-8")
	}
	out, err := serdejson.Marshal(astridHTTPResponse{Status: resp.Status, Headers: nonNil(resp.Headers), Body: string(resp.Body)})
	if err != nil {
		return nil, err
	}
	if len(out) > shared.MaxHostCallResultBytes {
		return nil, guestFailed("failed to read http response body: the response as JSON (its %d-byte body escaped, with its headers) is %d bytes; a host function returns at most %d bytes",
			len(resp.Body), len(out), shared.MaxHostCallResultBytes)
	}
	return out, nil
}

// nonNil returns h, or an empty map for nil (so it encodes as {}, not null).
func nonNil(h map[string]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	return h
}
