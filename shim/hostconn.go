package shim

import (
	"errors"

	"google.golang.org/grpc"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// hostConn is the shim's connection to the host's gRPC services (HTTP, processes). It is
// dialled in the background when the capsule loads, so the wait for the broker's address overlaps
// with loading the module; the first user waits for it. The connection itself is made at its
// first call (Broker.DialWithOptions).
type hostConn struct {
	done   chan struct{} // closed when the dial has finished
	client pb.HostServicesClient
	conn   *grpc.ClientConn
	err    error
}

var errNotConnected = errors.New("the shim is not connected to the host (no capsule loaded)")

// dialHost starts dialling the host's services served under broker id.
func dialHost(broker shared.Broker, id uint32) *hostConn {
	h := &hostConn{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.client, h.conn, h.err = shared.DialHostServices(broker, id)
	}()
	return h
}

// get waits for the dial and returns the client.
func (h *hostConn) get() (pb.HostServicesClient, error) {
	if h == nil {
		return nil, errNotConnected
	}
	<-h.done
	return h.client, h.err
}

// close waits for the dial and closes the connection.
func (h *hostConn) close() {
	if h == nil {
		return
	}
	<-h.done
	if h.conn != nil {
		h.conn.Close()
	}
}
