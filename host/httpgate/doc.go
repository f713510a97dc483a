// Package httpgate performs HTTP requests on behalf of capsules (extism's http_request and
// astrid_http_request) under the host's rules:
//
//   - the URL's host, and the host of every redirect, must be in the capsule's [capabilities] net
//     allow-list (see [Policy]);
//   - the connection may only go to a public address: loopback, private, link-local, CGNAT,
//     unspecified, multicast and reserved addresses are refused unless the operator allows private
//     networks. The check runs on the address actually dialled, after name resolution, so a DNS
//     answer that changes between checks (DNS rebinding) cannot slip through;
//   - only http and https, only the usual methods, no proxy taken from the environment;
//   - [Timeout] for the whole request including the body, [MaxBodyBytes] for each body,
//     [MaxURLBytes] for the URL, [MaxRequestHeaders] and [MaxRequestHeaderBytes] for the headers.
//
// [Client.OpenStream] opens a streaming response under the same rules (astrid_http_stream_*):
// at most [MaxStreams] per client, read in chunks of at most [MaxStreamChunkBytes] with
// [StreamReadTimeout] for each, and closed with the client.
//
// A [Client] belongs to one capsule instance: connections it keeps alive were opened under that
// capsule's policy and are never shared with another capsule, and its streams' handles mean
// nothing to another client.
package httpgate
