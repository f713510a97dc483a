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
// ctx bounds the whole call (at most IOTimeout each way without a deadline).
func Call(ctx context.Context, stateDir, method string, params, result any) error {
	path := SocketPath(stateDir)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return &NoHostError{StateDir: stateDir, Path: path, Err: err}
		}
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	defer conn.Close()
	uid, err := shared.PeerUID(conn)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if uid != os.Geteuid() {
		return fmt.Errorf("control socket %s: served by uid %d, not by this user (uid %d); refusing to talk to it", path, uid, os.Geteuid())
	}
	deadline := time.Now().Add(2 * IOTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	req := Request{Method: method}
	if params != nil {
		if req.Params, err = json.Marshal(params); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
	}
	if err := WriteFrame(conn, req); err != nil {
		return fmt.Errorf("control socket %s: send: %w", path, err)
	}
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
