package host

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/host/httpgate"
	"github.com/astrid-go/astrid/shared/pb"
)

// Http performs an HTTP request for the guest (extism's http_request, astrid_http_request). All
// the rules are the host's: the instance's client admits only the hosts in the capsule's
// [capabilities] net, refuses private addresses unless the operator allowed them, and enforces the
// time and size limits (see package httpgate). A refusal or failure is an error status whose
// message the shim turns into the guest's trap text.
func (s *hostServices) Http(ctx context.Context, req *pb.HttpRequest) (*pb.HttpResponse, error) {
	method, host := logMethod(req.Method), logHost(req.Url)
	client := s.inst.httpClient()
	if client == nil {
		return nil, status.Error(codes.Unavailable, "HTTP requests are not available: the capsule is stopping")
	}
	start := time.Now()
	resp, err := client.Do(ctx, httpgate.Request{URL: req.Url, Method: req.Method, Headers: req.Headers, Body: req.Body})
	if err != nil {
		code := httpErrorCode(err)
		s.inst.log.Debug("http request failed", "method", method, "host", host, "sent_bytes", len(req.Body),
			"code", code, "error", err, "took", time.Since(start))
		return nil, status.Error(code, err.Error())
	}
	// Only the method, host, status and sizes: bodies, header values and the URL's path and
	// query may carry the capsule's secrets.
	s.inst.log.Debug("http request", "method", method, "host", host, "status", resp.Status,
		"sent_bytes", len(req.Body), "received_bytes", len(resp.Body), "took", time.Since(start))
	return &pb.HttpResponse{Status: int32(resp.Status), Headers: resp.Headers, Body: resp.Body}, nil
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
