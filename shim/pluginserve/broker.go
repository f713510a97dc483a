package pluginserve

import (
	"context"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

// connWait is how long an address the host sent waits for Dial, and Dial for its address:
// go-plugin's 5 s on both sides.
const connWait = 5 * time.Second

// connInfo is go-plugin's plugin.ConnInfo (grpc_broker.proto): where the host serves a service
// for the plugin. Its field 4 (Knock, for multiplexing) is not used and is skipped when read.
// It is a message of protobuf's legacy API (struct tags), which gRPC's codec accepts.
type connInfo struct {
	ServiceID uint32 `protobuf:"varint,1,opt,name=service_id,json=serviceId,proto3"`
	Network   string `protobuf:"bytes,2,opt,name=network,proto3"`
	Address   string `protobuf:"bytes,3,opt,name=address,proto3"`
}

func (c *connInfo) Reset()         { *c = connInfo{} }
func (c *connInfo) String() string { return fmt.Sprintf("%d %s:%s", c.ServiceID, c.Network, c.Address) }
func (*connInfo) ProtoMessage()    {}

// Broker is the plugin's end of go-plugin's broker: it receives the addresses of the services
// the host serves for this plugin, and dials them by id.
type Broker struct {
	mu      sync.Mutex
	pending map[uint32]*pendingConn
}

// pendingConn is one id's address, from the moment either the address or a Dial for it came.
type pendingConn struct {
	ch    chan connInfo // buffered: the first address sent for the id
	timer *time.Timer   // forgets the address connWait after it came, if no Dial took it
}

func newBroker() *Broker { return &Broker{pending: map[uint32]*pendingConn{}} }

// get returns id's entry, made if needed. b.mu is held.
func (b *Broker) get(id uint32) *pendingConn {
	p, ok := b.pending[id]
	if !ok {
		p = &pendingConn{ch: make(chan connInfo, 1)}
		b.pending[id] = p
	}
	return p
}

// forget drops id's entry if it is still p, and its timer.
func (b *Broker) forget(id uint32, p *pendingConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
	}
	if b.pending[id] == p {
		delete(b.pending, id)
	}
}

// received files an address the host sent, for Dial to take within connWait.
func (b *Broker) received(c connInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.get(c.ServiceID)
	select {
	case p.ch <- c:
	default: // a second address for the same id: the first stands
		return
	}
	if p.timer == nil {
		id := c.ServiceID
		p.timer = time.AfterFunc(connWait, func() { b.forget(id, p) })
	}
}

// DialWithOptions returns a connection to the host's service id, once the host has sent its
// address (it waits up to 5 s for it), as go-plugin's GRPCBroker.DialWithOptions does without
// TLS, except that the connection is made at its first call rather than at once: a shim whose
// capsule never calls the service (most never make an HTTP request or start a process) costs
// neither side a connection, its HTTP/2 handshake and their goroutines.
func (b *Broker) DialWithOptions(id uint32, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	b.mu.Lock()
	p := b.get(id)
	b.mu.Unlock()
	var c connInfo
	select {
	case c = <-p.ch:
		b.forget(id, p)
	case <-time.After(connWait):
		b.forget(id, p)
		return nil, fmt.Errorf("broker: no address for service %d within %v", id, connWait)
	}
	if c.Network != "unix" {
		return nil, fmt.Errorf("broker: service %d is on a %q address; only unix sockets are dialled", id, c.Network)
	}
	addr := c.Address
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}
	all := append([]grpc.DialOption{
		grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	}, opts...)
	conn, err := grpc.NewClient("passthrough:///unused", all...)
	if err != nil {
		return nil, fmt.Errorf("broker: dial service %d: %w", id, err)
	}
	return conn, nil
}

// startStream serves the broker's stream (plugin.GRPCBroker/StartStream): the host sends an
// address on it for every service it serves for the plugin; the plugin sends nothing back.
func (b *Broker) startStream(stream grpc.ServerStream) error {
	for {
		var c connInfo
		if err := stream.RecvMsg(&c); err != nil {
			return err
		}
		b.received(c)
	}
}

var brokerDesc = grpc.ServiceDesc{
	ServiceName: "plugin.GRPCBroker",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "StartStream",
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(*Broker).startStream(stream) },
		ServerStreams: true,
		ClientStreams: true,
	}},
}

// controller is go-plugin's controller service: Shutdown stops the server, and Serve returns.
type controller struct{ stop func() }

var controllerDesc = grpc.ServiceDesc{
	ServiceName: "plugin.GRPCController",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Shutdown",
		Handler: func(srv any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(emptypb.Empty)); err != nil {
				return nil, err
			}
			srv.(*controller).stop()
			return new(emptypb.Empty), nil
		},
	}},
}

// stdioDesc is go-plugin's stdio service: the stream ends at once (the host's client then stops
// reading it), because nothing is redirected to it.
var stdioDesc = grpc.ServiceDesc{
	ServiceName: "plugin.GRPCStdio",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "StreamStdio",
		Handler:       func(any, grpc.ServerStream) error { return nil },
		ServerStreams: true,
	}},
}
