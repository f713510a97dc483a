package shim

import (
	"encoding/json"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// httpRequestJSON is the request block of extism's http_request.
type httpRequestJSON struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// httpRequest: http_request(req, body) -> response body. The shim only adapts: the host decides
// whether the capsule may reach the URL and performs the request. A refusal or failure traps the
// call with the host's message, as in Extism.
func (v *env) httpRequest(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	raw, err := k.ReadCaller(c, uint64(args[0].I64()))
	if err != nil {
		return nil, fmt.Errorf("request handle: %w", err)
	}
	var req httpRequestJSON
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf(`the request is not JSON of the form {"url": "...", "method": "GET", "headers": {...}}: %v`, err)
	}
	var body []byte
	if h := uint64(args[1].I64()); h != 0 {
		if body, err = k.ReadCaller(c, h); err != nil {
			return nil, fmt.Errorf("body handle %#x: %w", h, err)
		}
	}
	if len(body) > shared.MaxPayloadBytes {
		return nil, fmt.Errorf("the request body is %d bytes; the limit is %d bytes (10 MiB)", len(body), shared.MaxPayloadBytes)
	}
	client, err := v.host.get()
	if err != nil {
		return nil, err
	}
	resp, err := client.Http(v.call.ctx, &pb.HttpRequest{Url: req.URL, Method: req.Method, Headers: req.Headers, Body: body})
	if err != nil {
		if cause := interruption(v.call.ctx); cause != nil {
			return nil, cause
		}
		return nil, fmt.Errorf("%s", status.Convert(err).Message())
	}
	v.call.httpStatus = resp.Status
	v.call.httpHeaders = nil
	if len(resp.Headers) > 0 {
		if v.call.httpHeaders, err = json.Marshal(resp.Headers); err != nil {
			return nil, err
		}
	}
	return returnBytes(c, k, resp.Body)
}

// httpStatusCode: http_status_code() -> the status of this call's last http_request (0 if none).
func (v *env) httpStatusCode(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	return []wasmtime.Val{wasmtime.ValI32(v.call.httpStatus)}, nil
}

// httpHeaders: http_headers() -> JSON object of the last response's headers (0 if none).
func (v *env) httpHeaders(c *wasmtime.Caller, k *kernel.Kernel, _ []wasmtime.Val) ([]wasmtime.Val, error) {
	return returnBytes(c, k, v.call.httpHeaders)
}
