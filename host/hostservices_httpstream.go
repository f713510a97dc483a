package host

import (
	"context"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/astrid-go/astrid/host/httpgate"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shared/serdejson"
)

// astrid_http_stream_start/read/close: a response whose body the capsule reads in chunks. The
// streams are the instance's HTTP client's (httpgate.Client.OpenStream): opened under the same
// gate as every request, at most httpgate.MaxStreams at once, numbered from 1 per instance, and
// closed with the client when the instance stops, so none outlives it and no other capsule can
// name one.

func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_HTTP_STREAM_START] = astridHTTPStreamStart
	hostCallHandlers[pb.HostOp_HOST_OP_HTTP_STREAM_READ] = astridHTTPStreamRead
	hostCallHandlers[pb.HostOp_HOST_OP_HTTP_STREAM_CLOSE] = astridHTTPStreamClose
}

// astridHTTPStreamStartJSON is upstream's answer of astrid_http_stream_start.
type astridHTTPStreamStartJSON struct {
	Handle  string            `json:"handle"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
}

// astridHTTPStreamStart: astrid_http_stream_start(request) → {"handle": "<decimal>", "status",
// "headers"} once the response's headers have arrived; every failure traps.
func astridHTTPStreamStart(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	req, err := parseAstridHTTPRequest(args[0])
	if err != nil {
		return nil, err
	}
	client := s.inst.httpClient()
	if client == nil {
		return nil, guestFailed("http stream request failed: the capsule is stopping")
	}
	start := time.Now()
	head, err := client.OpenStream(ctx, req)
	if err != nil {
		s.logHTTP("http stream", req, nil, err, start)
		return nil, astridHTTPFailure(err, "http stream request")
	}
	s.inst.log.Debug("http stream opened", "method", logMethod(req.Method), "host", logHost(req.URL),
		"handle", head.Handle, "status", head.Status, "took", time.Since(start))
	return serdejson.Marshal(astridHTTPStreamStartJSON{Handle: strconv.FormatUint(head.Handle, 10), Status: head.Status, Headers: nonNil(head.Headers)})
}

// astridHTTPStreamRead: astrid_http_stream_read(handle) → the next chunk of the body, at most
// httpgate.MaxStreamChunkBytes; empty at the end of the body and when the call is interrupted
// or the capsule unloads. A chunk that does not come within httpgate.StreamReadTimeout, an
// unknown handle and a failed body trap.
func astridHTTPStreamRead(ctx context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	handle, err := parseStreamHandle(args[0])
	if err != nil {
		return nil, err
	}
	client := s.inst.httpClient()
	if client == nil {
		return nil, nil // unloading: empty, as upstream
	}
	b, err := client.ReadStream(ctx, handle)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, httpgate.ErrTimeout), errors.Is(err, httpgate.ErrUnknownStream):
		return nil, guestFailed("%s", err)
	default:
		return nil, guestFailed("HTTP stream read error: %s", err)
	}
}

// astridHTTPStreamClose: astrid_http_stream_close(handle) releases the stream; a handle that is
// not open is ignored (idempotent), only one that is not a number traps.
func astridHTTPStreamClose(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
	handle, err := parseStreamHandle(args[0])
	if err != nil {
		return nil, err
	}
	if client := s.inst.httpClient(); client != nil {
		client.CloseStream(handle)
	}
	return nil, nil
}

// parseStreamHandle parses a stream handle as upstream does (Rust's u64 parsing: decimal
// digits, an optional leading '+'), with upstream's texts.
func parseStreamHandle(raw []byte) (uint64, error) {
	const prefix = "invalid HTTP stream handle: "
	if !utf8.Valid(raw) {
		return 0, guestFailed(prefix + "the handle is not valid UTF-8")
	}
	digits := string(raw)
	if len(digits) > 0 && digits[0] == '+' {
		digits = digits[1:]
		if digits == "" {
			return 0, guestFailed(prefix + "invalid digit found in string")
		}
	}
	if digits == "" {
		return 0, guestFailed(prefix + "cannot parse integer from empty string")
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, guestFailed(prefix + "invalid digit found in string")
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, guestFailed(prefix + "number too large to fit in target type")
	}
	return n, nil
}
