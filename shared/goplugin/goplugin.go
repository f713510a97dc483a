// Package goplugin is the host's side of the protocol with hashicorp/go-plugin: the client
// configuration of a shim, the plugin definition and the host's handle on a shim. It is kept out
// of package shared so that the shim does not link go-plugin (whose server the shim does not use:
// see shim/pluginserve); a test shim serving with go-plugin's own server uses ShimPlugin.
package goplugin

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// Handshake is go-plugin's handshake of astrid-host and astrid-shim (shared.HandshakeVersion,
// shared.HandshakeCookieKey and shared.HandshakeCookieValue).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  shared.HandshakeVersion,
	MagicCookieKey:   shared.HandshakeCookieKey,
	MagicCookieValue: shared.HandshakeCookieValue,
}

// ClientConfig is the go-plugin client configuration for a shim started by cmd: gRPC only, no
// environment inherited from the host (cmd.Env is all the shim gets), the protocol's limits.
// The host uses it for every shim; the benchmarks' baseline uses it too, so both are measured
// under the same settings.
//
// It makes a fresh token for this shim: the host sends it first on every connection to the
// shim's server, and cmd.Env gets its SHA-256 (shared.EnvShimHostTokenSHA256), so the shim serves only
// the host that started it (see shared.ShimServer).
func ClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	creds, env := shared.HostToken()
	cmd.Env = append(append(cmd.Env, env), shared.ShimRuntimeEnv...)
	// go-plugin dials with insecure credentials and then applies these options; the later
	// WithTransportCredentials is the one gRPC uses.
	dial := append(shared.DialOptions(), grpc.WithTransportCredentials(creds))
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{shared.PluginName: &ShimPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true,
		Logger:           logger,
		GRPCDialOptions:  dial,
		StartTimeout:     shared.StartTimeout,
	}
}

// ShimPlugin is the go-plugin definition of the shim. The shim sets NewShimServer; the host leaves it nil.
type ShimPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// NewShimServer builds the shim's service. The broker lets it dial the host's services.
	NewShimServer func(broker *plugin.GRPCBroker) pb.ShimServer
}

// GRPCServer registers the shim's service (shim side).
func (p *ShimPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.NewShimServer == nil {
		return fmt.Errorf("goplugin.ShimPlugin: no NewShimServer set")
	}
	pb.RegisterShimServer(s, p.NewShimServer(broker))
	return nil
}

// GRPCClient returns a *ShimClient (host side). ctx is go-plugin's done context: it is cancelled
// when the shim process has exited.
func (p *ShimPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &ShimClient{ShimClient: pb.NewShimClient(conn), Broker: broker, Exited: ctx}, nil
}

// ShimClient is the host's handle on one shim.
type ShimClient struct {
	pb.ShimClient
	// Broker serves the host's callbacks to this shim.
	Broker *plugin.GRPCBroker
	// Exited is done once the shim process has exited.
	Exited context.Context
}

// ServeHostServices starts serving impl to this shim through the broker and returns the id the
// shim dials. The server lives as long as the broker, which go-plugin closes when the client is
// killed.
//
// Only the process shimPID may connect: the broker's socket is a path any process of the user
// can dial, so every accepted connection's peer pid (SO_PEERCRED) is checked before gRPC reads
// from it. Any other peer is disconnected and refused is told its pid (0 if it cannot be read).
func (c *ShimClient) ServeHostServices(impl pb.HostServicesServer, shimPID int, refused func(peerPID int, err error)) uint32 {
	id := c.Broker.NextId()
	creds := shared.OnlyPID(shimPID, refused)
	go c.Broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		// go-plugin passes TLS credentials only under AutoMTLS, which the host does not use; the
		// last grpc.Creds is the one the server uses.
		s := shared.NewServer(append(opts, grpc.Creds(creds)))
		pb.RegisterHostServicesServer(s, impl)
		return s
	})
	return id
}
