// Command astrid-shim runs one capsule's WebAssembly guest for astrid-host. It is started by the
// host through go-plugin and is not meant to be run by hand.
//
// The shim logs JSON lines on stderr, which the host relays under the capsule's name. Its stdout
// belongs to go-plugin's handshake, so nothing else may write there.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim"
	"github.com/astrid-go/astrid/shim/pluginserve"
)

func main() {
	// One P: the guest runs on one thread, and every other goroutine (the gRPC server, IPC, logs)
	// is light. With a second P, each goroutine made runnable (a frame read for the guest, an
	// answer for a waiting request) would wake another OS thread to look for work: on a small
	// machine that wake-up costs more than the socket round trip itself. A guest computing in
	// wasm does not hold the P (cgo hands it over), so the server still answers meanwhile.
	// The host sets GOMAXPROCS=1 in the shim's environment (shared.ShimRuntimeEnv), which is
	// cheaper at start-up; this call, then a no-op, covers a shim started otherwise.
	runtime.GOMAXPROCS(1)
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "astrid-shim",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv(shared.EnvShimLogLevel)),
	})
	// The artefacts the host checked and handed over as sealed descriptors (shared.Artefact): the
	// kernel's at start, the capsule's on a channel once checked.
	kernel, err := shared.InheritedArtefact(shared.EnvShimKernelFD)
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid-shim: %v\n", err)
		os.Exit(1)
	}
	artefacts, err := shared.InheritedSocket(shared.EnvShimArtefactSocket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid-shim: %v\n", err)
		os.Exit(1)
	}
	calls, err := callwire.InheritedShimEnd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid-shim: %v\n", err)
		os.Exit(1)
	}
	engine, err := shim.NewEngine(shim.EngineOptions{
		Fuel:           os.Getenv(shared.EnvShimFuel) == "1",
		KernelArtefact: kernel,
	})
	kernel.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid-shim: %v\n", err)
		os.Exit(1)
	}
	// Only the host that started this shim may call it: another process that finds its socket
	// (another capsule's shim, say) is refused and named in the log the host relays.
	server, err := shared.ShimServer(func(peerPID int, err error) {
		logger.Error("refused a connection to the shim's server", "peer_pid", peerPID, "error", err)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid-shim: %v\n", err)
		os.Exit(1)
	}
	// The host's go-plugin client starts the shim; the shim serves go-plugin's protocol itself,
	// without linking go-plugin (see shim/pluginserve: ~0.3 MB of an idle shim's PSS).
	err = pluginserve.Serve(pluginserve.Config{
		ProtocolVersion: shared.HandshakeVersion,
		CookieKey:       shared.HandshakeCookieKey,
		CookieValue:     shared.HandshakeCookieValue,
		NewServer:       server,
		Register: func(s *grpc.Server, broker *pluginserve.Broker) {
			srv := shim.NewServer(logger, engine, broker, artefacts, calls)
			pb.RegisterShimServer(s, srv)
			go func() {
				// It ends when the host closes its end (it stops the shim) or dies.
				if err := srv.ServeCalls(); err != nil {
					logger.Debug("the call connection ended", "error", err)
				}
			}()
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "astrid-shim: %v\n", err)
		os.Exit(1)
	}
}
