package httpgate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// local starts an HTTP server on 127.0.0.1 that the test closes. Every request it serves is
// counted, so a test can prove a refused request never reached it.
func local(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// private is a client that may reach the test servers on 127.0.0.1.
func private(t *testing.T, allow ...string) *Client {
	t.Helper()
	if len(allow) == 0 {
		allow = []string{"127.0.0.1", "localhost"}
	}
	c := NewClient(Policy{AllowHosts: allow, AllowPrivate: true})
	t.Cleanup(c.Close)
	return c
}

func TestRoundTrip(t *testing.T) {
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Got-Token", r.Header.Get("X-Token"))
		w.Header().Set("X-Got-Host", r.Host)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, "echo:%s", body)
		}
	})
	u, _ := url.Parse(srv.URL)
	c := private(t)
	tests := []struct {
		method, wantMethod string
		body, wantBody     string
	}{
		{"", "GET", "", "echo:"},
		{"get", "GET", "", "echo:"},
		{"POST", "POST", `{"a":1}`, `echo:{"a":1}`},
		{"PUT", "PUT", "put-body", "echo:put-body"},
		{"PATCH", "PATCH", "patch-body", "echo:patch-body"},
		{"DELETE", "DELETE", "", "echo:"},
		{"OPTIONS", "OPTIONS", "", "echo:"},
		{"HEAD", "HEAD", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.wantMethod+"/"+tt.method, func(t *testing.T) {
			resp, err := c.Do(context.Background(), Request{
				URL:     srv.URL + "/p/q?x=1",
				Method:  tt.method,
				Headers: map[string]string{"X-Token": "secret", "Host": "internal.example"},
				Body:    []byte(tt.body),
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != http.StatusCreated {
				t.Errorf("status %d", resp.Status)
			}
			if string(resp.Body) != tt.wantBody {
				t.Errorf("body %q, want %q", resp.Body, tt.wantBody)
			}
			want := map[string]string{
				"x-method":    tt.wantMethod,
				"x-path":      "/p/q?x=1",
				"x-got-token": "secret",
				"x-got-host":  u.Host, // the Host header is the URL's, not the guest's
				"set-cookie":  "a=1, b=2",
			}
			for k, v := range want {
				if resp.Headers[k] != v {
					t.Errorf("header %s = %q, want %q (all: %v)", k, resp.Headers[k], v, resp.Headers)
				}
			}
		})
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := private(t)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c.tr.TLSClientConfig.RootCAs = pool

	resp, err := c.Do(context.Background(), Request{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Body); got != "HTTP/2.0 true" {
		t.Errorf("body %q, want HTTP/2 over TLS", got)
	}
}

// TestPrivateRefused: the same server that AllowPrivate reaches is refused without it, by name
// and by every literal form of its address, before a single byte reaches it.
func TestPrivateRefused(t *testing.T) {
	srv, hits := local(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	if _, err := private(t).Do(context.Background(), Request{URL: srv.URL}); err != nil {
		t.Fatalf("with AllowPrivate: %v", err)
	}
	hits.Store(0)

	c := NewClient(Policy{AllowHosts: []string{"*"}})
	defer c.Close()
	tests := []struct {
		host, want string
	}{
		{"localhost", `HTTP request to "localhost:` + port + `" refused: it resolves only to loopback/private addresses (127.0.0.1`},
		{"127.0.0.1", `HTTP request to "127.0.0.1:` + port + `" refused: 127.0.0.1 is a loopback/private address`},
		{"[::1]", `refused: ::1 is a loopback/private address`},
		{"[::ffff:127.0.0.1]", `refused: ::ffff:127.0.0.1 is a loopback/private address`},
		{"[::ffff:7f00:1]", `refused: ::ffff:127.0.0.1 is a loopback/private address`},
		{"0.0.0.0", `refused: 0.0.0.0 is a loopback/private address`},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			_, err := c.Do(context.Background(), Request{URL: "http://" + tt.host + ":" + port + "/"})
			if !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Do = %v, want ErrNotAllowed", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, privateRefusal) {
				t.Errorf("message %q lacks %q or the upstream wording", msg, tt.want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server received %d refused requests", n)
	}
}

func TestNoProxyFromEnvironment(t *testing.T) {
	c := NewClient(Policy{})
	defer c.Close()
	if c.tr.Proxy != nil {
		t.Error("the transport takes a proxy from the environment")
	}
}

func TestRedirects(t *testing.T) {
	var srvURL string
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-evil":
			http.Redirect(w, r, "http://evil.example/steal", http.StatusFound)
		case "/to-localhost":
			http.Redirect(w, r, strings.Replace(srvURL, "127.0.0.1", "localhost", 1)+"/final", http.StatusFound)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/same-host":
			http.Redirect(w, r, "/final", http.StatusMovedPermanently)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/final":
			fmt.Fprint(w, "final")
		}
	})
	srvURL = srv.URL
	c := private(t, "127.0.0.1")
	tests := []struct {
		path     string
		kind     error // nil: success expected unless message set
		message  string
		wantBody string
	}{
		{"/same-host", nil, "", "final"},
		{"/to-evil", ErrNotAllowed, `HTTP redirect to "evil.example" is not allowed: the capsule's allowed hosts do not include it (it lists: 127.0.0.1)`, ""},
		{"/to-localhost", ErrNotAllowed, `HTTP redirect to "localhost" is not allowed`, ""},
		{"/to-file", ErrInvalid, `scheme "file"`, ""},
		{"/loop", nil, "stopped after 10 redirects", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := c.Do(context.Background(), Request{URL: srv.URL + tt.path})
			if tt.message == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(resp.Body) != tt.wantBody {
					t.Errorf("body %q, want %q", resp.Body, tt.wantBody)
				}
				return
			}
			if err == nil {
				t.Fatalf("Do succeeded (status %d), want an error", resp.Status)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("Do = %v, want %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("message %q lacks %q", err, tt.message)
			}
		})
	}
}

func TestResponseBodyLimit(t *testing.T) {
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		n := MaxBodyBytes
		if r.URL.Path != "/exact" {
			n++
		}
		if r.URL.Path == "/chunked" {
			// No Content-Length: only the limited read can notice.
			w.Header().Set("Transfer-Encoding", "chunked")
			w.(http.Flusher).Flush()
		}
		chunk := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	c := private(t)
	tests := []struct {
		path    string
		tooLong bool
	}{
		{"/exact", false},
		{"/over", true},
		{"/chunked", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := c.Do(context.Background(), Request{URL: srv.URL + tt.path})
			if !tt.tooLong {
				if err != nil || len(resp.Body) != MaxBodyBytes {
					t.Fatalf("Do = %v (body %d bytes), want the whole %d bytes", err, bodyLen(resp), MaxBodyBytes)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Do = %v (body %d bytes), want ErrTooLarge", err, bodyLen(resp))
			}
			if resp != nil {
				t.Error("a truncated response was returned with the error")
			}
			if !strings.Contains(err.Error(), "HTTP response body exceeds 10485760 bytes (10 MiB)") {
				t.Errorf("message %q", err)
			}
		})
	}
}

func bodyLen(r *Response) int {
	if r == nil {
		return -1
	}
	return len(r.Body)
}

// blockingServer answers nothing until the request or the test ends; it returns a channel that
// receives once each time a request has arrived.
func blockingServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	testDone := make(chan struct{})
	arrived := make(chan struct{}, 16)
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-testDone:
		}
	})
	t.Cleanup(func() { close(testDone) }) // runs before srv.Close, which waits for handlers
	return srv, arrived
}

func TestTimeout(t *testing.T) {
	srv, _ := blockingServer(t)
	c := private(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, Request{URL: srv.URL})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do = %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "30s") {
		t.Errorf("message %q does not name the 30s limit", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Do returned after %s", d)
	}
}

// TestOwnTimeLimit checks the message for the package's own limit, which a test cannot wait for.
func TestOwnTimeLimit(t *testing.T) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Nanosecond, errTimeLimit)
	defer cancel()
	<-ctx.Done()
	err := classify(ctx, "example.com", context.DeadlineExceeded)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("classify = %v, want ErrTimeout", err)
	}
	if want := `HTTP request to "example.com" timed out after 30s`; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
}

func TestCancelled(t *testing.T) {
	srv, arrived := blockingServer(t)
	c := private(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := c.Do(ctx, Request{URL: srv.URL})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	for _, kind := range []error{ErrNotAllowed, ErrInvalid, ErrTooLarge, ErrTimeout} {
		if errors.Is(err, kind) {
			t.Errorf("a cancelled request is %v", kind)
		}
	}
}

func TestCloseAbortsRequests(t *testing.T) {
	srv, arrived := blockingServer(t)
	c := NewClient(Policy{AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true})
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), Request{URL: srv.URL})
		done <- err
	}()
	<-arrived
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, errClosed) {
			t.Errorf("Do = %v, want the closed error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not abort the request")
	}
	if _, err := c.Do(context.Background(), Request{URL: srv.URL}); !errors.Is(err, errClosed) {
		t.Errorf("Do after Close = %v", err)
	}
	c.Close() // a second Close is harmless
}

func TestConnectionRefused(t *testing.T) {
	// A port that was just free on loopback: the failure is neither a refusal nor a timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := private(t)
	_, err = c.Do(context.Background(), Request{URL: "http://" + addr + "/"})
	if err == nil {
		t.Fatal("Do succeeded")
	}
	for _, kind := range []error{ErrNotAllowed, ErrInvalid, ErrTooLarge, ErrTimeout} {
		if errors.Is(err, kind) {
			t.Errorf("connection refused is %v: %v", kind, err)
		}
	}
	if !strings.HasPrefix(err.Error(), `HTTP request to "`+addr+`" failed: `) {
		t.Errorf("message %q", err)
	}
}
