// Command rawshim is the baseline of the benchmarks in package tests: a go-plugin server speaking
// the shim protocol with none of the runtime behind it. Load only deserialises the artefact (if
// one is named) and dials the host's services (if served); Invoke of "http" makes one Http broker
// RPC to the host with the input as the URL and returns the body; any other Invoke echoes its
// input. Comparing astrid-shim against it measures what the runtime adds to go-plugin's own costs.
package main

import (
	"context"
	"os"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// rawServer uses a bare wasmtime engine with the settings astrid-shim compiles under (epoch
// interruption on), so it can load astrid-shim's cached artefacts.
type rawServer struct {
	pb.UnimplementedShimServer
	engine *wasmtime.Engine
	module *wasmtime.Module
	broker *plugin.GRPCBroker
	host   pb.HostServicesClient
}

func (s *rawServer) Load(_ context.Context, req *pb.LoadRequest) (*pb.LoadResponse, error) {
	if req.ArtefactPath != "" {
		m, err := wasmtime.NewModuleDeserializeFile(s.engine, req.ArtefactPath)
		if err != nil {
			return nil, err
		}
		s.module = m
	}
	if req.HostServicesId != 0 {
		client, _, err := shared.DialHostServices(s.broker, req.HostServicesId)
		if err != nil {
			return nil, err
		}
		s.host = client
	}
	return &pb.LoadResponse{}, nil
}

func (s *rawServer) Invoke(ctx context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
	if req.Export == "http" && s.host != nil {
		resp, err := s.host.Http(ctx, &pb.HttpRequest{Url: string(req.Input)})
		if err != nil {
			return nil, err
		}
		return &pb.InvokeResponse{Output: resp.Body}, nil
	}
	return &pb.InvokeResponse{Output: req.Input}, nil
}

func main() {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	engine := wasmtime.NewEngineWithConfig(cfg)
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: plugin.PluginSet{shared.PluginName: &shared.ShimPlugin{
			NewShimServer: func(b *plugin.GRPCBroker) pb.ShimServer { return &rawServer{engine: engine, broker: b} },
		}},
		GRPCServer: shared.NewServer,
		Logger:     logger,
	})
}
