package httpgate

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Client performs requests under a Policy. Build one per capsule instance (it holds an
// http.Transport with the guarded dialer, whose kept-alive connections must not serve another
// capsule) and Close it when the instance stops. A Client is safe for concurrent use.
type Client struct {
	policy Policy
	tr     *http.Transport
	hc     *http.Client

	// stopped is cancelled by Close and aborts the requests in flight.
	stopped context.Context
	stop    context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // requests in Do and streams being opened

	// The client's open streams (see stream.go), under mu: by handle, how many are being opened
	// (they hold a slot of MaxStreams), and the last handle given out. readers counts the
	// goroutines reading a stream's body.
	streams    map[uint64]*stream
	opening    int
	lastStream uint64
	readers    sync.WaitGroup

	// connectTimeout is StreamConnectTimeout and readTimeout StreamReadTimeout; tests shorten
	// them.
	connectTimeout, readTimeout time.Duration
}

// errClosed is returned by Do after Close, or when Close interrupted the request.
var errClosed = errors.New("the capsule's HTTP client is closed (the capsule is stopping)")

// errTimeLimit is the cause of a request's context when Timeout passed.
var errTimeLimit = errors.New("the HTTP time limit passed")

// NewClient builds a client for one capsule instance. p is copied.
func NewClient(p Policy) *Client {
	p.AllowHosts = slices.Clone(p.AllowHosts)
	d := newDialer(p.AllowPrivate)
	tr := &http.Transport{
		// Never a proxy from the environment: the proxy would make the connection, out of reach
		// of the address rule.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true, // a custom DialContext turns HTTP/2 off unless asked for
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: MaxHeaderBytes,
	}
	stopped, stop := context.WithCancel(context.Background())
	c := &Client{policy: p, tr: tr, stopped: stopped, stop: stop, streams: map[uint64]*stream{}, connectTimeout: StreamConnectTimeout, readTimeout: StreamReadTimeout}
	c.hc = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// Close aborts the requests in flight, closes every open stream (a read waiting for a chunk
// returns at once, empty), waits for all of them to return and closes the kept-alive
// connections. Do and OpenStream fail after Close. Close may be called more than once.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	open := c.streams
	c.streams = map[uint64]*stream{}
	c.mu.Unlock()
	c.stop()
	for _, s := range open {
		s.close(errClosed)
	}
	c.inflight.Wait()
	c.readers.Wait()
	c.tr.CloseIdleConnections()
}

// checkRedirect applies the first request's rules to every redirect target.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxRedirects {
		return fmt.Errorf("HTTP request to %q stopped after %d redirects", via[0].URL.Host, MaxRedirects)
	}
	if err := checkScheme(req.URL); err != nil {
		return err
	}
	if !c.policy.allows(req.URL.Hostname()) {
		return c.policy.notAllowed("HTTP redirect", req.URL.Hostname())
	}
	return nil
}

// Do performs r and returns the final response with its whole body. Errors wrap ErrNotAllowed,
// ErrInvalid, ErrTooLarge or ErrTimeout where one applies; any other error (connection refused,
// TLS failure, ctx cancelled) is a plain failure. The request ends at ctx's end or after Timeout,
// whichever comes first.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	p, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.inflight.Done()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(c.stopped, func() { cancel(errClosed) })()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, Timeout, errTimeLimit)
	defer cancelTimeout()

	resp, err := c.send(ctx, p)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// A HEAD response's Content-Length describes a body that is not sent.
	if p.method != http.MethodHead && resp.ContentLength > MaxBodyBytes {
		return nil, tooLarge(p.url.Host)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, classify(ctx, p.url.Host, err)
	}
	if len(data) > MaxBodyBytes {
		return nil, tooLarge(p.url.Host)
	}
	return &Response{Status: resp.StatusCode, Headers: responseHeaders(resp.Header), Body: data}, nil
}

// prepared is a Request that passed the checks made before anything is sent.
type prepared struct {
	method string
	url    *url.URL
	header http.Header
	body   []byte
}

// prepare checks r before anything is sent: method, URL, the allow-list, the body's size and
// the headers. Do and OpenStream both start with it.
func (c *Client) prepare(r Request) (*prepared, error) {
	method, err := checkMethod(r.Method)
	if err != nil {
		return nil, err
	}
	u, err := checkURL(r.URL)
	if err != nil {
		return nil, err
	}
	if !c.policy.allows(u.Hostname()) {
		return nil, c.policy.notAllowed("HTTP request", u.Hostname())
	}
	if len(r.Body) > MaxBodyBytes {
		return nil, newError(ErrTooLarge, fmt.Sprintf("HTTP request body is %d bytes; it may not exceed %d bytes (10 MiB)", len(r.Body), MaxBodyBytes))
	}
	hdr, err := header(r.Headers)
	if err != nil {
		return nil, err
	}
	return &prepared{method: method, url: u, header: hdr, body: r.Body}, nil
}

// enter counts a request in flight, or fails once the client is closed. The caller calls
// c.inflight.Done when the request has returned.
func (c *Client) enter() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	c.inflight.Add(1)
	return nil
}

// send sends p with ctx and returns the final response (after redirects), whose body the caller
// reads and closes.
func (c *Client) send(ctx context.Context, p *prepared) (*http.Response, error) {
	var body io.Reader
	if len(p.body) > 0 {
		body = bytes.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url.String(), body)
	if err != nil {
		return nil, newError(ErrInvalid, fmt.Sprintf("HTTP request to %q: %v", p.url.Host, err))
	}
	req.Header = p.header
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, classify(ctx, p.url.Host, err)
	}
	return resp, nil
}

func tooLarge(target string) error {
	return newError(ErrTooLarge, fmt.Sprintf("HTTP response body exceeds %d bytes (10 MiB); the response from %q was discarded", MaxBodyBytes, target))
}

// classify turns a transport failure into the package's errors: the gate's own refusals pass
// through unchanged (without the url.Error / net.OpError wrapping), timeouts become ErrTimeout.
func classify(ctx context.Context, target string, err error) error {
	var ge *gateError
	if errors.As(err, &ge) {
		return ge
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errTimeLimit):
		return newError(ErrTimeout, fmt.Sprintf("HTTP request to %q timed out after %s (the limit for one request, including its response body)", target, Timeout))
	case errors.Is(cause, errConnectLimit):
		return newError(ErrTimeout, fmt.Sprintf("HTTP stream to %q did not answer within the limit for opening a stream (%s, until the response's headers)", target, StreamConnectTimeout))
	case errors.Is(cause, context.DeadlineExceeded):
		return newError(ErrTimeout, fmt.Sprintf("HTTP request to %q timed out: the calling guest's deadline passed first (the limit for one request is %s)", target, Timeout))
	case errors.Is(cause, errClosed):
		return fmt.Errorf("HTTP request to %q abandoned: %w", target, errClosed)
	case cause != nil:
		return fmt.Errorf("HTTP request to %q cancelled: %w", target, cause)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return newError(ErrTimeout, fmt.Sprintf("HTTP request to %q timed out (the limit for one request is %s): %v", target, Timeout, unwrapURLError(err)))
	}
	return fmt.Errorf("HTTP request to %q failed: %w", target, unwrapURLError(err))
}
