package syssock

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// The handshake a client sends first on the socket, as upstream's session_token.rs.
const (
	// ProtocolVersion is the wire protocol version (upstream's PROTOCOL_VERSION).
	ProtocolVersion = 1
	// MaxHandshakeBytes bounds the handshake request and response frames: 4096 bytes.
	MaxHandshakeBytes = 4096
	// HandshakeTimeout bounds each read and write of the server's side of the handshake: 5 s.
	HandshakeTimeout = 5 * time.Second
	// ClientHandshakeTimeout bounds each step of the client's side: 10 s, as upstream's CLI
	// (longer than the server's, so the server's refusal arrives first).
	ClientHandshakeTimeout = 10 * time.Second
	// TokenHexLen is the length of the session token in hex: 64 characters (32 random bytes).
	TokenHexLen = 64
)

// Refusals the server sends in a handshake response. A wrong or malformed token gets the same
// answer, so a client cannot tell the two apart.
const (
	ReasonAuthFailed = "authentication failed"
)

// HandshakeRequest is the first frame a client sends (upstream's HandshakeRequest).
type HandshakeRequest struct {
	Token           string `json:"token"`
	ProtocolVersion uint8  `json:"protocol_version"`
	ClientVersion   string `json:"client_version"`
}

// HandshakeResponse is the server's answer (upstream's HandshakeResponse): status "ok" or
// "error", the server's protocol and version, and for an error the reason.
type HandshakeResponse struct {
	Status          string `json:"status"`
	ProtocolVersion uint8  `json:"protocol_version"`
	ServerVersion   string `json:"server_version"`
	Reason          string `json:"reason,omitempty"`
}

// maxLoggedClientVersion bounds the client_version the server logs: 64 characters.
const maxLoggedClientVersion = 64

// versionMismatch is the refusal of a client speaking another protocol version. It is checked
// before the token, so the answer says nothing about the token.
func versionMismatch(client uint8) string {
	return fmt.Sprintf("Protocol version mismatch (client=%d, server=%d). Restart the host with `astrid-host run`.", client, ProtocolVersion)
}

// parseHandshakeRequest decodes a request as upstream's serde does: every field present, with
// its type (protocol_version a number from 0 to 255).
func parseHandshakeRequest(b []byte) (HandshakeRequest, error) {
	var raw struct {
		Token           *string          `json:"token"`
		ProtocolVersion *json.RawMessage `json:"protocol_version"`
		ClientVersion   *string          `json:"client_version"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return HandshakeRequest{}, err
	}
	if dec.More() {
		return HandshakeRequest{}, errors.New("trailing characters")
	}
	switch {
	case raw.Token == nil:
		return HandshakeRequest{}, errors.New("missing field `token`")
	case raw.ProtocolVersion == nil:
		return HandshakeRequest{}, errors.New("missing field `protocol_version`")
	case raw.ClientVersion == nil:
		return HandshakeRequest{}, errors.New("missing field `client_version`")
	}
	var v uint8
	if err := json.Unmarshal(*raw.ProtocolVersion, &v); err != nil {
		return HandshakeRequest{}, fmt.Errorf("protocol_version: want an integer from 0 to 255: %w", err)
	}
	return HandshakeRequest{Token: *raw.Token, ProtocolVersion: v, ClientVersion: *raw.ClientVersion}, nil
}

// tokenMatches compares a client's hex token with the server's in constant time; a token that
// is not 64 hex digits never matches.
func tokenMatches(client string, want []byte) bool {
	if len(client) != TokenHexLen {
		return false
	}
	got, err := hex.DecodeString(client)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// serverHandshake runs the server's side of the handshake on conn within HandshakeTimeout per
// step: it reads the request, checks the protocol version, then the token, and answers. It
// returns the client's version (for the log), or why the client was refused.
func serverHandshake(conn net.Conn, token []byte, serverVersion string) (string, error) {
	if err := conn.SetReadDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return "", fmt.Errorf("handshake read error: %w", err)
	}
	var hdr [4]byte
	if _, err := readFull(conn, hdr[:]); err != nil {
		if isTimeout(err) {
			return "", errors.New("handshake timed out (5s)")
		}
		return "", fmt.Errorf("handshake read error: %w", err)
	}
	n := uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3])
	if n > MaxHandshakeBytes {
		return "", fmt.Errorf("handshake too large: %d bytes", n)
	}
	if err := conn.SetReadDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return "", fmt.Errorf("handshake payload read error: %w", err)
	}
	payload := make([]byte, n)
	if _, err := readFull(conn, payload); err != nil {
		if isTimeout(err) {
			return "", errors.New("handshake payload timed out")
		}
		return "", fmt.Errorf("handshake payload read error: %w", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return "", fmt.Errorf("handshake read error: %w", err)
	}
	req, err := parseHandshakeRequest(payload)
	if err != nil {
		return "", fmt.Errorf("invalid handshake JSON: %w", err)
	}
	if req.ProtocolVersion != ProtocolVersion {
		reason := versionMismatch(req.ProtocolVersion)
		_ = sendResponse(conn, HandshakeResponse{Status: "error", ProtocolVersion: ProtocolVersion, ServerVersion: serverVersion, Reason: reason})
		return "", errors.New(reason)
	}
	if !tokenMatches(req.Token, token) {
		_ = sendResponse(conn, HandshakeResponse{Status: "error", ProtocolVersion: ProtocolVersion, ServerVersion: serverVersion, Reason: ReasonAuthFailed})
		return "", errors.New("invalid session token")
	}
	if err := sendResponse(conn, HandshakeResponse{Status: "ok", ProtocolVersion: ProtocolVersion, ServerVersion: serverVersion}); err != nil {
		return "", fmt.Errorf("failed to send handshake response: %w", err)
	}
	v := []rune(req.ClientVersion)
	if len(v) > maxLoggedClientVersion {
		v = v[:maxLoggedClientVersion]
	}
	return string(v), nil
}

// sendResponse writes a handshake response frame within HandshakeTimeout.
func sendResponse(conn net.Conn, resp HandshakeResponse) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	if err := conn.SetWriteDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return err
	}
	if err := WriteFrame(conn, b); err != nil {
		if isTimeout(err) {
			return errors.New("handshake response write timed out (5s)")
		}
		return err
	}
	return conn.SetWriteDeadline(time.Time{})
}

// ClientHandshake runs the client's side on conn: it sends token (64 hex characters) and
// clientVersion, and returns nil when the server accepts, else the server's reason or what
// went wrong. Each step has ClientHandshakeTimeout.
func ClientHandshake(conn net.Conn, token, clientVersion string) error {
	req, err := json.Marshal(HandshakeRequest{Token: token, ProtocolVersion: ProtocolVersion, ClientVersion: clientVersion})
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(time.Now().Add(ClientHandshakeTimeout)); err != nil {
		return err
	}
	defer conn.SetDeadline(time.Time{})
	if err := WriteFrame(conn, req); err != nil {
		return fmt.Errorf("send the handshake: %w", err)
	}
	b, err := ReadFrame(conn, MaxHandshakeBytes)
	if err != nil {
		return fmt.Errorf("read the handshake response: %w", err)
	}
	var resp HandshakeResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("parse the handshake response: %w", err)
	}
	if resp.Status != "ok" {
		reason := resp.Reason
		if reason == "" {
			reason = "unknown error"
		}
		return fmt.Errorf("the host rejected the connection: %s", reason)
	}
	return nil
}

// ReadToken reads the session token file at path: 64 hex characters (surrounding white space
// is ignored, as upstream's read_from_file trims).
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read the session token: %w (is a host running on this state directory?)", err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := readFull(f, buf)
	tok := string(bytes.TrimSpace(buf[:n]))
	if len(tok) != TokenHexLen {
		return "", fmt.Errorf("the session token in %s is %d characters; want %d hex characters", path, len(tok), TokenHexLen)
	}
	if _, err := hex.DecodeString(tok); err != nil {
		return "", fmt.Errorf("the session token in %s is not hex: %w", path, err)
	}
	return tok, nil
}
