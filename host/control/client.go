package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/astrid-go/astrid/shared"
)

// NoHostError says that no host runs with the state directory: its control socket does not
// exist, or nothing answers on it.
type NoHostError struct {
	StateDir string
	Path     string
	Err      error
}

func (e *NoHostError) Error() string {
	return fmt.Sprintf("no astrid-host run is running with state directory %s (nothing answers on %s: %v)", e.StateDir, e.Path, e.Err)
}

func (e *NoHostError) Unwrap() error { return e.Err }

// RemoteError is a method's failure as the host reported it.
type RemoteError struct {
	Method string
	Msg    string
}

func (e *RemoteError) Error() string { return e.Msg }

// Call calls method with params (any JSON-encodable value, or nil) on the control socket of the
// host that runs with stateDir, and decodes the method's result into result (unless nil). It
// fails with a *NoHostError when no host runs there, a *RemoteError when the method failed.
// ctx bounds the whole call (at most 2 IOTimeout without a deadline); when it ends, the
// connection is closed, which cancels the method on the host.
func Call(ctx context.Context, stateDir, method string, params, result any) error {
	conn, path, err := request(ctx, stateDir, method, params)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * IOTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var resp Response
	if err := ReadFrame(conn, &resp); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("control socket %s: no answer: %w", path, err)
	}
	if !resp.OK {
		return &RemoteError{Method: method, Msg: resp.Error}
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("%s: decoding the result: %w", method, err)
		}
	}
	return nil
}

// ErrConnectionLost is CallStream's error when the connection ends before the stream's last
// frame: the host died, or cut the stream off.
var ErrConnectionLost = errors.New("the connection to the host ended before the stream did")

// CallStream calls a method that answers with a stream (see Stream) and calls onFrame with
// each frame's result, in order, until the stream ends; first with nil, once the host has
// accepted the request (what the method set up, such as a subscription, is then in place). It returns nil when the host ended the
// stream without error, a *RemoteError when the method failed or its stream ended with an error
// (ErrStopping's text when the host is shutting down), a *NoHostError when no host runs with
// stateDir, ctx's error when ctx ended first (the connection is then closed, which ends the
// stream on the host), an error wrapping ErrConnectionLost when the connection ended without a
// last frame, and onFrame's error when it failed. The host must answer the request within
// 2 IOTimeout; the stream itself has no time limit.
func CallStream(ctx context.Context, stateDir, method string, params any, onFrame func(json.RawMessage) error) error {
	conn, path, err := request(ctx, stateDir, method, params)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(2 * IOTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	for first := true; ; first = false {
		var resp Response
		if err := ReadFrame(conn, &resp); err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case first:
				return fmt.Errorf("control socket %s: no answer: %w", path, err)
			}
			return fmt.Errorf("control socket %s: %w (%v)", path, ErrConnectionLost, err)
		}
		switch {
		case !resp.OK:
			return &RemoteError{Method: method, Msg: resp.Error}
		case resp.End:
			return nil
		case first:
			if len(resp.Result) > 0 {
				return fmt.Errorf("%s: the host answered with a result, not a stream", method)
			}
			conn.SetReadDeadline(time.Time{})
			if ctx.Err() != nil { // ended before the deadline was lifted: AfterFunc's is gone
				return ctx.Err()
			}
			if err := onFrame(nil); err != nil {
				return err
			}
			continue
		}
		if err := onFrame(resp.Result); err != nil {
			return err
		}
	}
}

// request connects to stateDir's control socket, checks who serves it and sends the request.
func request(ctx context.Context, stateDir, method string, params any) (net.Conn, string, error) {
	path := SocketPath(stateDir)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, path, &NoHostError{StateDir: stateDir, Path: path, Err: err}
		}
		return nil, path, fmt.Errorf("control socket %s: %w", path, err)
	}
	uid, err := shared.PeerUID(conn)
	if err != nil {
		conn.Close()
		return nil, path, fmt.Errorf("control socket %s: %w", path, err)
	}
	if uid != os.Geteuid() {
		conn.Close()
		return nil, path, fmt.Errorf("control socket %s: served by uid %d, not by this user (uid %d); refusing to talk to it", path, uid, os.Geteuid())
	}
	req := Request{Method: method}
	if params != nil {
		if req.Params, err = json.Marshal(params); err != nil {
			conn.Close()
			return nil, path, fmt.Errorf("%s: %w", method, err)
		}
	}
	conn.SetWriteDeadline(time.Now().Add(IOTimeout))
	if err := WriteFrame(conn, req); err != nil {
		conn.Close()
		return nil, path, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, path, nil
}
