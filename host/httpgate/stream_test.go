package httpgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// readAll reads stream h to its end and returns the chunks.
func readAll(t *testing.T, c *Client, h uint64) [][]byte {
	t.Helper()
	var chunks [][]byte
	for {
		b, err := c.ReadStream(context.Background(), h)
		if err != nil {
			t.Fatalf("ReadStream(%d): %v", h, err)
		}
		if len(b) == 0 {
			return chunks
		}
		chunks = append(chunks, b)
	}
}

func TestStreamLargeBody(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Kind", "large")
		w.WriteHeader(http.StatusAccepted)
		w.Write(want)
	})
	c := private(t)
	head, err := c.OpenStream(context.Background(), Request{URL: srv.URL + "/big"})
	if err != nil {
		t.Fatal(err)
	}
	if head.Handle != 1 || head.Status != http.StatusAccepted || head.Headers["x-kind"] != "large" {
		t.Fatalf("head = %+v, want handle 1, status 202, x-kind large", head)
	}
	chunks := readAll(t, c, head.Handle)
	if len(chunks) < len(want)/MaxStreamChunkBytes {
		t.Errorf("%d chunks for %d bytes; at most %d bytes each means at least %d", len(chunks), len(want), MaxStreamChunkBytes, len(want)/MaxStreamChunkBytes)
	}
	for i, ch := range chunks {
		if len(ch) > MaxStreamChunkBytes {
			t.Fatalf("chunk %d is %d bytes; the bound is %d", i, len(ch), MaxStreamChunkBytes)
		}
	}
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, want) {
		t.Fatalf("streamed %d bytes, want the %d bytes sent", len(got), len(want))
	}
	// At the end every read is empty, until the stream is closed.
	if b, err := c.ReadStream(context.Background(), head.Handle); err != nil || len(b) != 0 {
		t.Fatalf("read after the end = %q, %v; want empty", b, err)
	}
}

// slowServer answers with part one, then waits for release before part two; it reports on
// finished when its handler returns (its request's context ended or it wrote everything).
func slowServer(t *testing.T) (url string, release chan struct{}, finished chan error) {
	release, finished = make(chan struct{}), make(chan error, 8)
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "part one;")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			fmt.Fprint(w, "part two")
			finished <- nil
		case <-r.Context().Done():
			finished <- r.Context().Err()
		}
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return srv.URL, release, finished
}

func TestStreamSlowBody(t *testing.T) {
	u, release, finished := slowServer(t)
	c := private(t)
	head, err := c.OpenStream(context.Background(), Request{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	// The first part arrives while the server still holds the second: a read returns what has
	// arrived rather than waiting for the whole body.
	b, err := c.ReadStream(context.Background(), head.Handle)
	if err != nil || string(b) != "part one;" {
		t.Fatalf("first read = %q, %v; want \"part one;\"", b, err)
	}
	// A read interrupted by its context returns empty; the chunk it was waiting for is kept for
	// the next read.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []byte)
	go func() {
		b, _ := c.ReadStream(ctx, head.Handle)
		done <- b
	}()
	cancel()
	if b := <-done; len(b) != 0 {
		t.Fatalf("interrupted read = %q, want empty", b)
	}
	close(release)
	if err := <-finished; err != nil {
		t.Fatalf("server: %v", err)
	}
	if got := string(bytes.Join(readAll(t, c, head.Handle), nil)); got != "part two" {
		t.Fatalf("rest = %q, want \"part two\"", got)
	}
}

func TestStreamReadTimeout(t *testing.T) {
	u, release, _ := slowServer(t)
	c := private(t)
	c.readTimeout = 50 * time.Millisecond
	head, err := c.OpenStream(context.Background(), Request{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := c.ReadStream(context.Background(), head.Handle); string(b) != "part one;" {
		t.Fatalf("first read = %q, %v", b, err)
	}
	_, err = c.ReadStream(context.Background(), head.Handle)
	if !errors.Is(err, ErrTimeout) || err.Error() != "HTTP stream read timed out after 0.05s" {
		t.Fatalf("read of a silent stream = %v, want ErrTimeout \"HTTP stream read timed out after 0.05s\"", err)
	}
	// The stream stays open: the chunk arrives for a later read.
	close(release)
	c.readTimeout = StreamReadTimeout
	if got := string(bytes.Join(readAll(t, c, head.Handle), nil)); got != "part two" {
		t.Fatalf("after the timeout: %q, want \"part two\"", got)
	}
}

func TestStreamConnectTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) {
		select { // no headers until released
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := private(t)
	c.connectTimeout = 50 * time.Millisecond
	_, err := c.OpenStream(context.Background(), Request{URL: srv.URL})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not answer within the limit for opening a stream (30s") {
		t.Fatalf("OpenStream on a silent server = %v, want ErrTimeout naming the opening limit", err)
	}
	// The slot is free again.
	c.mu.Lock()
	n, opening := len(c.streams), c.opening
	c.mu.Unlock()
	if n != 0 || opening != 0 {
		t.Fatalf("%d streams, %d opening after a failed open; want none", n, opening)
	}
}

func TestStreamCap(t *testing.T) {
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") })
	c := private(t)
	for want := uint64(1); want <= MaxStreams; want++ {
		head, err := c.OpenStream(context.Background(), Request{URL: srv.URL})
		if err != nil || head.Handle != want {
			t.Fatalf("stream %d: %+v, %v", want, head, err)
		}
	}
	_, err := c.OpenStream(context.Background(), Request{URL: srv.URL})
	if !errors.Is(err, ErrStreamLimit) || err.Error() != "HTTP stream cap reached (4/4)" {
		t.Fatalf("fifth stream = %v, want \"HTTP stream cap reached (4/4)\"", err)
	}
	// Closing one frees a slot; handles are not reused.
	c.CloseStream(2)
	head, err := c.OpenStream(context.Background(), Request{URL: srv.URL})
	if err != nil || head.Handle != 5 {
		t.Fatalf("after a close: %+v, %v; want handle 5", head, err)
	}
}

func TestStreamCloseIdempotent(t *testing.T) {
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") })
	c := private(t)
	head, err := c.OpenStream(context.Background(), Request{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		handle uint64
	}{{"open", head.Handle}, {"again", head.Handle}, {"never opened", 99}, {"zero", 0}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.CloseStream(tt.handle)
			_, err := c.ReadStream(context.Background(), tt.handle)
			if !errors.Is(err, ErrUnknownStream) || err.Error() != "HTTP stream handle not found" {
				t.Fatalf("read of a closed handle = %v, want \"HTTP stream handle not found\"", err)
			}
		})
	}
}

// TestStreamsBelongToTheirClient: a handle opened by one capsule's client is unknown to another's.
func TestStreamsBelongToTheirClient(t *testing.T) {
	srv, _ := local(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "mine") })
	a, b := private(t), private(t)
	head, err := a.OpenStream(context.Background(), Request{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadStream(context.Background(), head.Handle); !errors.Is(err, ErrUnknownStream) {
		t.Fatalf("another client's read = %v, want ErrUnknownStream", err)
	}
	b.CloseStream(head.Handle)
	if got := string(bytes.Join(readAll(t, a, head.Handle), nil)); got != "mine" {
		t.Fatalf("owner's read after another client's close = %q, want \"mine\"", got)
	}
}

// TestStreamClientCloseEndsRead: Close (the capsule stops) ends a read blocked on a silent
// server at once, empty, and the server sees the connection go.
func TestStreamClientCloseEndsRead(t *testing.T) {
	u, _, finished := slowServer(t)
	c := NewClient(Policy{AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true})
	defer c.Close()
	head, err := c.OpenStream(context.Background(), Request{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.ReadStream(context.Background(), head.Handle); string(b) != "part one;" {
		t.Fatalf("first read = %q", b)
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result)
	go func() {
		b, err := c.ReadStream(context.Background(), head.Handle)
		done <- result{b, err}
	}()
	// Close runs while the read waits (or before it starts, which must end the same way).
	c.Close()
	if r := <-done; r.err != nil || len(r.b) != 0 {
		t.Fatalf("read ended by Close = %q, %v; want empty", r.b, r.err)
	}
	if err := <-finished; err == nil {
		t.Fatal("the server finished its response; the closed stream should have ended its request")
	}
	if _, err := c.OpenStream(context.Background(), Request{URL: u}); err == nil {
		t.Fatal("OpenStream after Close succeeded")
	}
}

// TestStreamCloseEndsRead: CloseStream ends a read blocked on the same stream.
func TestStreamCloseEndsRead(t *testing.T) {
	u, _, finished := slowServer(t)
	c := private(t)
	head, err := c.OpenStream(context.Background(), Request{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	c.ReadStream(context.Background(), head.Handle) // part one
	done := make(chan []byte)
	go func() {
		b, _ := c.ReadStream(context.Background(), head.Handle)
		done <- b
	}()
	c.CloseStream(head.Handle)
	if b := <-done; len(b) != 0 {
		t.Fatalf("read ended by CloseStream = %q, want empty", b)
	}
	if err := <-finished; err == nil {
		t.Fatal("the server finished its response after CloseStream")
	}
}

// TestStreamGate: a stream passes the same gate as Do, before anything is sent.
func TestStreamGate(t *testing.T) {
	srv, hits := local(t, func(w http.ResponseWriter, r *http.Request) {})
	tests := []struct {
		name   string
		client *Client
		url    string
		kind   error
		want   string
	}{
		{"host not listed", private(t, "example.com"), srv.URL, ErrNotAllowed, "is not allowed: the capsule's allowed hosts do not include it"},
		{"loopback without private network", func() *Client {
			c := NewClient(Policy{AllowHosts: []string{"127.0.0.1"}})
			t.Cleanup(c.Close)
			return c
		}(), srv.URL, ErrPrivateAddress, "DNS resolved to an unauthorized private or local IP address"},
		{"scheme", private(t), "file:///etc/passwd", ErrInvalid, `scheme "file" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.OpenStream(context.Background(), Request{URL: tt.url})
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("OpenStream = %v, want %v containing %q", err, tt.kind, tt.want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server saw %d requests; refused streams must send nothing", n)
	}
}
