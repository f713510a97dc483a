// Command rawshim is the baseline of the benchmarks in package tests: a go-plugin server speaking
// the shim protocol with none of the runtime behind it. Invoke echoes its input; Load only
// deserialises the artefact. Comparing astrid-shim against it measures what the runtime adds to
// go-plugin's own costs.
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
}

func (s *rawServer) Load(_ context.Context, req *pb.LoadRequest) (*pb.LoadResponse, error) {
	m, err := wasmtime.NewModuleDeserializeFile(s.engine, req.ArtefactPath)
	if err != nil {
		return nil, err
	}
	s.module = m
	return &pb.LoadResponse{}, nil
}

func (s *rawServer) Invoke(_ context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
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
			NewShimServer: func(*plugin.GRPCBroker) pb.ShimServer { return &rawServer{engine: engine} },
		}},
		GRPCServer: shared.NewServer,
		Logger:     logger,
	})
}
