package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astrid-go/astrid/host"
	"github.com/astrid-go/astrid/host/httpgate"
)

// The HTTP host functions through a real shim, called by the raw capsule (no SDK, upstream's
// import declarations). Its manifest lists net = ["127.0.0.1", "localhost"]; the servers are
// httptest servers on 127.0.0.1, reachable only with the host's AllowPrivateNetwork (the
// --allow-private-network of astrid-host), which the SSRF tests leave off.

// httpServer starts a local server that counts its requests and is closed when the test ends.
func httpServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// privateNetworkHost is a test host whose capsules may reach 127.0.0.1.
func privateNetworkHost(t *testing.T) *host.Host {
	return newHost(t, func(c *host.Config) { c.AllowPrivateNetwork = true })
}

// httpReq is the request JSON of astrid_http_request and astrid_http_stream_start.
func httpReq(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantTrap checks that a raw call failed with a guest error whose message holds want.
func wantTrap(t *testing.T, out []byte, err error, want string) {
	t.Helper()
	var ge *host.GuestError
	if !errors.As(err, &ge) {
		t.Fatalf("call = %q, %v; want a trap with %q", out, err, want)
	}
	if !strings.Contains(ge.Message, want) {
		t.Fatalf("trap %q lacks %q", ge.Message, want)
	}
}

// TestHostHTTPRequest: astrid_http_request with each method, headers and a body, answered in
// upstream's shape.
func TestHostHTTPRequest(t *testing.T) {
	checkLeaks(t)
	srv, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Got-Token", r.Header.Get("X-Token"))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "echo <%s> é", body)
	})
	inst, _ := loadCapsule(t, privateNetworkHost(t), "raw")
	tests := []struct {
		name, method, wantMethod, body, wantBody string
	}{
		{"default GET", "", "GET", "", "echo <> é"},
		{"get lower-case", "get", "GET", "", "echo <> é"},
		{"POST", "POST", "POST", `{"a":1}`, `echo <{"a":1}> é`},
		{"PUT", "PUT", "PUT", "put", "echo <put> é"},
		{"DELETE", "DELETE", "DELETE", "", "echo <> é"},
		{"PATCH", "PATCH", "PATCH", "patch", "echo <patch> é"},
		{"OPTIONS", "OPTIONS", "OPTIONS", "", "echo <> é"},
		{"HEAD", "HEAD", "HEAD", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := map[string]any{"url": srv.URL + "/p?q=1", "headers": map[string]string{"X-Token": "secret"}}
			if tt.method != "" {
				f["method"] = tt.method
			}
			if tt.body != "" {
				f["body"] = tt.body
			}
			out, err := callRaw(t, inst, "astrid_http_request", httpReq(t, f))
			if err != nil {
				t.Fatal(err)
			}
			var resp struct {
				Status  int               `json:"status"`
				Headers map[string]string `json:"headers"`
				Body    string            `json:"body"`
			}
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatalf("result %q: %v", out, err)
			}
			if resp.Status != http.StatusCreated || resp.Headers["x-method"] != tt.wantMethod ||
				resp.Headers["x-got-token"] != "secret" || resp.Body != tt.wantBody {
				t.Fatalf("response %+v; want status 201, x-method %s, the token echoed, body %q", resp, tt.wantMethod, tt.wantBody)
			}
			// serde_json's encoding: no HTML escaping of the body.
			if tt.body != "" && !bytes.Contains(out, []byte(`"body":"echo <`)) {
				t.Errorf("result %q escapes < as Go's default JSON does; upstream does not", out)
			}
		})
	}
}

// TestHostHTTPRequestFailures: every failure of astrid_http_request traps with upstream's words
// for the stage that failed; refused requests never reach the server.
func TestHostHTTPRequestFailures(t *testing.T) {
	checkLeaks(t)
	big := strings.Repeat("x", httpgate.MaxBodyBytes+1)
	srv, hits := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big)
		case "/latin1":
			w.Write([]byte("caf\xe9"))
		default:
			io.WriteString(w, "ok")
		}
	})
	inst, _ := loadCapsule(t, privateNetworkHost(t), "raw")
	many := map[string]string{}
	for i := range httpgate.MaxRequestHeaders + 1 {
		many[fmt.Sprintf("X-%d", i)] = "v"
	}
	tests := []struct {
		name    string
		req     []byte
		reaches bool // the request reaches the server
		want    string
	}{
		{"host not in net", httpReq(t, map[string]any{"url": "http://example.com/"}), false,
			`security denied network access: HTTP request to "example.com" is not allowed: the capsule's allowed hosts do not include it (it lists: 127.0.0.1, localhost); to allow it, list it in [capabilities] net of`},
		{"response body over 10 MiB", httpReq(t, map[string]any{"url": srv.URL + "/big"}), true,
			"failed to read http response body: HTTP response body exceeds 10485760 bytes (10 MiB)"},
		{"response body not UTF-8", httpReq(t, map[string]any{"url": srv.URL + "/latin1"}), true,
			"failed to read http response body: response body is not valid UTF-8"},
		{"method", httpReq(t, map[string]any{"url": srv.URL, "method": "TRACE"}), false,
			`HTTP method "TRACE" is not supported; use one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS`},
		{"not JSON", []byte("{url"), false, "invalid http request json: "},
		{"no url", []byte(`{"method":"GET"}`), false, "invalid http request json: missing field `url`"},
		{"request not UTF-8", []byte("{\"url\":\"\xff\"}"), false, "failed to parse request as utf8"},
		{"header injection", httpReq(t, map[string]any{"url": srv.URL, "headers": map[string]string{"X-A": "a\r\nX-Injected: 1"}}), false,
			`HTTP request header "X-A" has a value with control characters`},
		{"too many headers", httpReq(t, map[string]any{"url": srv.URL, "headers": many}), false,
			"HTTP request has 65 headers; it may have at most 64"},
		{"URL too long", httpReq(t, map[string]any{"url": srv.URL + "/" + strings.Repeat("a", httpgate.MaxURLBytes)}), false,
			"it may not exceed 8192 bytes (8 KiB)"},
		{"scheme", httpReq(t, map[string]any{"url": "file:///etc/passwd"}), false, `HTTP request URL scheme "file" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			out, err := callRaw(t, inst, "astrid_http_request", tt.req)
			wantTrap(t, out, err, tt.want)
			if reached := hits.Load() > before; reached != tt.reaches {
				t.Errorf("the request reached the server: %v, want %v", reached, tt.reaches)
			}
		})
	}
	// A trap in a host function fails that call only.
	if _, err := callRaw(t, inst, "astrid_http_request", httpReq(t, map[string]any{"url": srv.URL})); err != nil {
		t.Fatalf("a request after the failures: %v", err)
	}
}

// TestHostHTTPSSRF: without --allow-private-network an allowed host that is a loopback address
// is refused on the connected address, for a request and for a stream, before anything reaches
// the server.
func TestHostHTTPSSRF(t *testing.T) {
	checkLeaks(t)
	srv, hits := httpServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") })
	inst, _ := loadCapsule(t, newHost(t), "raw")
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, tt := range []struct{ fn, url, want string }{
		{"astrid_http_request", srv.URL, "http request failed: HTTP request to \"127.0.0.1" + port + "\" refused: 127.0.0.1 is a loopback/private address"},
		{"astrid_http_request", "http://localhost" + port, "DNS resolved to an unauthorized private or local IP address"},
		{"astrid_http_stream_start", srv.URL, "http stream request failed: HTTP request to \"127.0.0.1" + port + "\" refused"},
	} {
		t.Run(tt.fn+" "+tt.url, func(t *testing.T) {
			out, err := callRaw(t, inst, tt.fn, httpReq(t, map[string]any{"url": tt.url}))
			wantTrap(t, out, err, tt.want)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server saw %d requests; the SSRF rule must stop them before they are sent", n)
	}
}

// streamStart opens a stream through the raw capsule and returns its upstream-shaped answer.
func streamStart(t *testing.T, inst *host.Instance, url string) (handle string, status int, headers map[string]string) {
	t.Helper()
	out, err := callRaw(t, inst, "astrid_http_stream_start", httpReq(t, map[string]any{"url": url}))
	if err != nil {
		t.Fatalf("astrid_http_stream_start: %v", err)
	}
	var resp struct {
		Handle  string            `json:"handle"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("stream start result %q: %v", out, err)
	}
	return resp.Handle, resp.Status, resp.Headers
}

// streamRest reads a stream to its end through the raw capsule and returns its chunks.
func streamRest(t *testing.T, inst *host.Instance, handle string) [][]byte {
	t.Helper()
	var chunks [][]byte
	for {
		b, err := callRaw(t, inst, "astrid_http_stream_read", []byte(handle))
		if err != nil {
			t.Fatalf("astrid_http_stream_read(%s): %v", handle, err)
		}
		if len(b) == 0 {
			return chunks
		}
		chunks = append(chunks, b)
	}
}

// TestHostHTTPStream: a large response arrives in chunks of at most 64 KiB; a slow one chunk by
// chunk as the server sends it (the first before the server has sent the rest).
func TestHostHTTPStream(t *testing.T) {
	checkLeaks(t)
	large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	release, held := make(chan struct{}), make(chan struct{})
	srv, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Kind", r.URL.Path)
		switch r.URL.Path {
		case "/large":
			w.Write(large)
		case "/held":
			w.(http.Flusher).Flush()
			select {
			case <-held:
				io.WriteString(w, "held part")
			case <-r.Context().Done():
			}
		case "/slow":
			io.WriteString(w, "first;")
			w.(http.Flusher).Flush()
			select {
			case <-release:
				io.WriteString(w, "second")
			case <-r.Context().Done():
			}
		}
	})
	inst, _ := loadCapsule(t, privateNetworkHost(t), "raw")

	t.Run("large", func(t *testing.T) {
		handle, status, headers := streamStart(t, inst, srv.URL+"/large")
		if handle != "1" || status != 200 || headers["x-kind"] != "/large" {
			t.Fatalf("start = %q %d %v; want handle \"1\", 200, x-kind /large", handle, status, headers)
		}
		chunks := streamRest(t, inst, handle)
		for i, c := range chunks {
			if len(c) > httpgate.MaxStreamChunkBytes {
				t.Fatalf("chunk %d is %d bytes; the bound is %d", i, len(c), httpgate.MaxStreamChunkBytes)
			}
		}
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, large) {
			t.Fatalf("streamed %d bytes in %d chunks; want the %d bytes sent", len(got), len(chunks), len(large))
		}
		if _, err := callRaw(t, inst, "astrid_http_stream_close", []byte(handle)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("call time limit", func(t *testing.T) {
		// A read blocked on the server ends with the call's time limit; the stream (the host's)
		// outlives the call and its chunk comes to the next read.
		handle, _, _ := streamStart(t, inst, srv.URL+"/held")
		in, _ := json.Marshal(rawRequest{Fn: "astrid_http_stream_read", Args: [][]byte{[]byte(handle)}})
		_, err := inst.Call(context.Background(), "call", in, 300*time.Millisecond)
		var ge *host.GuestError
		if !errors.As(err, &ge) || !strings.Contains(ge.Message, "time limit") {
			t.Fatalf("read past the call's time limit = %v, want the time limit", err)
		}
		close(held)
		if got := string(bytes.Join(streamRest(t, inst, handle), nil)); got != "held part" {
			t.Fatalf("after the time limit: %q, want \"held part\"", got)
		}
		callRaw(t, inst, "astrid_http_stream_close", []byte(handle))
	})
	t.Run("slow", func(t *testing.T) {
		handle, _, _ := streamStart(t, inst, srv.URL+"/slow")
		b, err := callRaw(t, inst, "astrid_http_stream_read", []byte(handle))
		if err != nil || string(b) != "first;" {
			t.Fatalf("first read = %q, %v; want \"first;\" while the server holds the rest", b, err)
		}
		close(release)
		if got := string(bytes.Join(streamRest(t, inst, handle), nil)); got != "second" {
			t.Fatalf("rest = %q, want \"second\"", got)
		}
		callRaw(t, inst, "astrid_http_stream_close", []byte(handle))
	})
}

// TestHostHTTPStreamHandles: at most 4 streams with upstream's text for the fifth, handles from
// 1 and never reused, close idempotent, unknown and malformed handles.
func TestHostHTTPStreamHandles(t *testing.T) {
	checkLeaks(t)
	srv, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "body") })
	inst, _ := loadCapsule(t, privateNetworkHost(t), "raw")
	for want := 1; want <= httpgate.MaxStreams; want++ {
		if h, _, _ := streamStart(t, inst, srv.URL); h != fmt.Sprint(want) {
			t.Fatalf("stream %d has handle %q", want, h)
		}
	}
	out, err := callRaw(t, inst, "astrid_http_stream_start", httpReq(t, map[string]any{"url": srv.URL}))
	wantTrap(t, out, err, "HTTP stream cap reached (4/4)")

	for _, tt := range []struct{ name, handle string }{{"open", "2"}, {"again", "2"}, {"never opened", "77"}, {"plus sign", "+2"}} {
		t.Run("close "+tt.name, func(t *testing.T) {
			if _, err := callRaw(t, inst, "astrid_http_stream_close", []byte(tt.handle)); err != nil {
				t.Fatalf("close %q: %v", tt.handle, err)
			}
		})
	}
	out, err = callRaw(t, inst, "astrid_http_stream_read", []byte("2"))
	wantTrap(t, out, err, "HTTP stream handle not found")
	if h, _, _ := streamStart(t, inst, srv.URL); h != "5" {
		t.Fatalf("the stream after a close has handle %q, want \"5\"", h)
	}
	for _, tt := range []struct{ name, handle, want string }{
		{"empty", "", "invalid HTTP stream handle: cannot parse integer from empty string"},
		{"letters", "abc", "invalid HTTP stream handle: invalid digit found in string"},
		{"negative", "-1", "invalid HTTP stream handle: invalid digit found in string"},
		{"too large", "18446744073709551616", "invalid HTTP stream handle: number too large to fit in target type"},
		{"over 1 KiB", strings.Repeat("1", 1025), "memory allocation of 1025 bytes exceeds maximum allowed limit of 1024 bytes"},
	} {
		for _, fn := range []string{"astrid_http_stream_read", "astrid_http_stream_close"} {
			t.Run(fn+" "+tt.name, func(t *testing.T) {
				out, err := callRaw(t, inst, fn, []byte(tt.handle))
				wantTrap(t, out, err, tt.want)
			})
		}
	}
}

// rawNamed copies the built raw capsule under another name, so a second capsule with the same
// code can be loaded next to it.
func rawNamed(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	toml, err := os.ReadFile(filepath.Join(capsules["raw"], "Capsule.toml"))
	if err != nil {
		t.Fatal(err)
	}
	toml = bytes.Replace(toml, []byte(`name = "raw"`), []byte(`name = "`+name+`"`), 1)
	wasm, err := os.ReadFile(filepath.Join(capsules["raw"], "raw.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Capsule.toml"), toml, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raw.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHostHTTPStreamOwner: a stream belongs to the capsule that opened it: another capsule can
// neither read nor close it by its handle.
func TestHostHTTPStreamOwner(t *testing.T) {
	checkLeaks(t)
	srv, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "owner's data") })
	h := privateNetworkHost(t)
	owner, _ := loadCapsule(t, h, "raw")
	other, _ := loadCapsule(t, h, rawNamed(t, "raw-other"))
	handle, _, _ := streamStart(t, owner, srv.URL)
	out, err := callRaw(t, other, "astrid_http_stream_read", []byte(handle))
	wantTrap(t, out, err, "HTTP stream handle not found")
	if _, err := callRaw(t, other, "astrid_http_stream_close", []byte(handle)); err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.Join(streamRest(t, owner, handle), nil)); got != "owner's data" {
		t.Fatalf("the owner reads %q after the other capsule's close; want \"owner's data\"", got)
	}
}

// TestHostHTTPStreamStopEndsRead: a stream read blocked on a server that sends nothing ends as
// soon as the capsule is stopped (not after the 120 s chunk limit), and the server sees its
// connection closed: nothing of the stream outlives the capsule.
func TestHostHTTPStreamStopEndsRead(t *testing.T) {
	checkLeaks(t)
	ended := make(chan error, 1)
	srv, _ := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never sends more: only the client going away ends this
		ended <- r.Context().Err()
	})
	inst, _ := loadCapsule(t, privateNetworkHost(t), "raw")
	handle, _, _ := streamStart(t, inst, srv.URL)
	if b, err := callRaw(t, inst, "astrid_http_stream_read", []byte(handle)); err != nil || string(b) != "first;" {
		t.Fatalf("first read = %q, %v", b, err)
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := callRaw(t, inst, "astrid_http_stream_read", []byte(handle))
		done <- result{out, err}
	}()
	waitFor(t, 10*time.Second, "the read to hold the capsule's Store", func() bool { return storeBusy(inst) })
	start := time.Now()
	stopped := make(chan struct{})
	go func() {
		inst.Stop(context.Background())
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(httpgate.StreamReadTimeout / 4):
		t.Fatal("Stop was still waiting 30 s after it began: the capsule's stream outlives it")
	}
	select {
	case r := <-done:
		if len(r.out) != 0 {
			t.Fatalf("the read ended by the stop returned %q", r.out)
		}
		t.Logf("the blocked read ended %s after Stop began: %v", time.Since(start), r.err)
	case <-time.After(httpgate.StreamReadTimeout / 4):
		t.Fatal("the stream read was still blocked 30 s after the capsule was stopped")
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the server's request ended without the connection closing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's request was still open 10 s after the capsule was stopped")
	}
}
