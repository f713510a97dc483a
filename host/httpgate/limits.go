package httpgate

import "time"

// Timeout bounds one request from the first dial to the last byte of the response body. It
// matches upstream Astrid's 30 s total timeout, so a capsule cannot hold a host connection (and
// its own call) open indefinitely on a slow or silent server.
const Timeout = 30 * time.Second

// MaxBodyBytes is the largest request body a capsule may send and the largest response body it
// may receive (10 MiB each), as upstream. A larger response is an error rather than a truncated
// body, so a guest never mistakes part of a document for the whole.
const MaxBodyBytes = 10 << 20

// MaxHeaderBytes bounds the response headers (256 KiB). With the body limit it keeps a response
// within the size of one message between the host and the shim.
const MaxHeaderBytes = 256 << 10

// MaxRedirects is how many redirects one request follows (as reqwest's default upstream); each
// redirect target is checked against the allow-list and the address rule like the first URL.
const MaxRedirects = 10

// MaxURLBytes bounds a request's URL (8 KiB, the request-line limit common servers apply), so a
// capsule cannot make the host parse, log or send an arbitrarily long one.
const MaxURLBytes = 8 << 10

// MaxRequestHeaders bounds how many headers a request carries (64), and MaxRequestHeaderBytes
// the total length of their names and values (64 KiB): a capsule's header map is built, checked
// and sent by the host, so its size is bounded before any of that.
const (
	MaxRequestHeaders     = 64
	MaxRequestHeaderBytes = 64 << 10
)

// Streaming responses (astrid_http_stream_*), upstream's limits except the chunk bound, which
// upstream leaves to its HTTP library.
const (
	// MaxStreams is how many streams one client (one capsule instance) may hold open at once.
	MaxStreams = 4
	// StreamConnectTimeout bounds opening a stream: from the first dial until the response's
	// headers have arrived (upstream bounds the connection with it; bounding the headers too
	// means a silent server cannot hold one of the MaxStreams slots in an opening state).
	StreamConnectTimeout = 30 * time.Second
	// StreamReadTimeout bounds the wait for one chunk of a stream's body.
	StreamReadTimeout = 120 * time.Second
	// MaxStreamChunkBytes bounds one chunk a read returns (64 KiB): a read returns what has
	// arrived, up to this many bytes, as soon as any has.
	MaxStreamChunkBytes = 64 << 10
)
