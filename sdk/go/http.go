package astrid

import (
	"encoding/json"
	"errors"
	"fmt"
)

// HTTPRequest describes an HTTP request that the host makes for the capsule
// (see Fetch).
type HTTPRequest struct {
	// Method is the HTTP method, such as "GET" or "POST"; empty means GET.
	Method string
	// URL is the absolute URL to fetch. Its host must be allowed by the
	// capsule's manifest: [capabilities] net = ["example.com", ...].
	URL string
	// Headers are the request headers, one value per name.
	Headers map[string]string
}

// HTTPResponse is the response to an HTTPRequest.
type HTTPResponse struct {
	// Status is the HTTP status code, such as 200 or 404.
	Status int
	// Headers are the response headers, one value per name: the host joins
	// several values of one header with ", ". astrid-host reports the names
	// in lower case ("content-type"). It may be nil if there are none.
	Headers map[string]string
	// Body is the response body (empty, not nil, if there is none).
	Body []byte
}

// httpRequestJSON is the request as the kernel's http_request reads it.
type httpRequestJSON struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// Fetch makes the HTTP request req through the host, with body as the
// request body (nil for none), and returns the response, whatever its status:
// a 404 or 500 response is a response, not an error, as in net/http.
//
// Capsules have no network of their own; the host makes the request, and only
// to the hosts listed in the manifest's [capabilities] net. A request that
// the host refuses or that fails (host not allowed, DNS or connection error,
// timeout, response too large) traps the export call with the host's
// message, as Extism hosts do: Fetch does not return in that case, and the
// capsule cannot handle the failure. Fetch returns an error only for what it
// detects itself: an empty URL, or response headers it cannot decode.
func Fetch(req HTTPRequest, body []byte) (*HTTPResponse, error) {
	if req.URL == "" {
		return nil, errors.New("astrid: Fetch: empty URL")
	}
	r := httpRequestJSON{URL: req.URL, Method: req.Method, Headers: req.Headers}
	if r.Method == "" {
		r.Method = "GET"
	}
	if r.Headers == nil {
		r.Headers = map[string]string{} // {} rather than null
	}
	rj, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("astrid: Fetch: encoding the request: %w", err)
	}
	rm := AllocateBytes(rj)
	bm := AllocateBytes(body) // the zero Memory, handle 0, for no body
	h := kernelHTTPRequest(rm.handle, bm.handle)
	bm.Free()
	rm.Free()

	resp := &HTTPResponse{Status: int(kernelHTTPStatusCode()), Body: []byte{}}
	if m := FindMemory(h); m.handle != 0 {
		resp.Body = m.Bytes()
		m.Free()
	}
	if m := FindMemory(kernelHTTPHeaders()); m.handle != 0 {
		hj := m.Bytes()
		m.Free()
		if err := json.Unmarshal(hj, &resp.Headers); err != nil {
			return nil, fmt.Errorf("astrid: Fetch: decoding the response headers %q: %w", hj, err)
		}
	}
	return resp, nil
}
