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
