// Package control is a running host's control socket, STATE/run/control.sock, through which
// astrid-host commands reach the host that runs with that state directory (`astrid-host
// approve` answers a capsule's approval request).
//
// Who may connect: the socket is mode 0600 in a 0700 directory owned by the host's user, and the
// server checks each connection's peer user id (SO_PEERCRED) before it reads a byte, refusing
// every other user (root included, unless the host runs as root). The client checks the
// server's user id the same way. The server also refuses every process that descends from its
// own (the capsules' shims and what they spawn run as the host's user too; see lineage.go).
//
// The protocol: one request and its response per connection, each a frame of a 4-byte
// big-endian length and that many bytes of JSON, at most MaxFrameBytes. A request is
// {"method": string, "params": any JSON}; a response {"ok": true, "result": any JSON} or
// {"ok": false, "error": string}. Methods are named functions the server is given (Handlers),
// so a new command is a new method. A connection that sends nothing within IOTimeout is closed;
// at most MaxConns are served at once. The client sends nothing after its request: closing the
// connection (or sending more) cancels the request.
//
// Streams: a method may answer with a sequence of frames instead (`astrid-host tail` follows the
// bus this way): {"ok": true}, then one {"ok": true, "result": ...} per value, then a last frame
// with "end": true, "ok" saying whether it ended well and "error" why not (the host shutting down
// ends every stream so). A stream has no time limit while it has nothing to send; a frame the
// client does not take within StreamWriteTimeout ends it; at most MaxStreams run at once. See
// Stream (server) and CallStream (client).
package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/astrid-go/astrid/host/internal/rundir"
)

// Names in the state directory.
const (
	// DirName is the state directory's runtime directory (0700).
	DirName = rundir.Name
	// SocketName is the control socket in it (0600).
	SocketName = "control.sock"
)

// Limits of the protocol.
const (
	// MaxFrameBytes bounds one request or response: 1 MiB.
	MaxFrameBytes = 1 << 20
	// IOTimeout bounds reading a request and writing its response.
	IOTimeout = 10 * time.Second
	// MaxConns bounds the connections served at once; more are refused at once.
	MaxConns = 16
)

// SocketPath is the control socket of the host that runs with stateDir.
func SocketPath(stateDir string) string { return filepath.Join(rundir.Path(stateDir), SocketName) }

// Request is one call of a method.
type Request struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Response is a method's answer: its result, or why it failed. A stream's frames are Responses
// too, its last one with End set (see Stream).
type Response struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	End    bool            `json:"end,omitempty"`
}

// ErrFrameTooLarge refuses a frame over MaxFrameBytes, before it is read.
var ErrFrameTooLarge = fmt.Errorf("frame larger than %d bytes", MaxFrameBytes)

// WriteFrame writes v as one frame: its JSON's length, big-endian in 4 bytes, then the JSON.
func WriteFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxFrameBytes {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(b))
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(frame, b...))
	return err
}

// ReadFrame reads one frame and decodes its JSON into v. A length over MaxFrameBytes is refused
// before anything more is read.
func ReadFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameBytes {
		return fmt.Errorf("%w: the frame says %d bytes", ErrFrameTooLarge, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	return nil
}
