// Package shared is the protocol between astrid-host and astrid-shim, in one place: the
// handshake, the gRPC settings both sides must agree on, the shim's runtime settings. The
// messages and services themselves are protobuf, in package shared/pb; the go-plugin client
// configuration and plugin definition, which only the host links, are in shared/goplugin.
//
// The host (package host) and the shim (package shim) are thin adapters over what is defined here:
// the host dispenses a *goplugin.ShimClient; the shim serves the pb.ShimServer it builds from the
// broker.
package shared

import (
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/astrid-go/astrid/shared/pb"
)

// PluginName is the name under which the shim's service is dispensed.
const PluginName = "shim"

// MaxPayloadBytes is the largest input, output or log batch that crosses the host↔shim channel:
// 10 MiB, upstream's MAX_GUEST_PAYLOAD_LEN.
const MaxPayloadBytes = 10 << 20

// CheckInput is the rule on a call's input: at most MaxPayloadBytes. The host applies it before
// it sends a call; the shim again when one arrives.
func CheckInput(n int) error {
	if n > MaxPayloadBytes {
		return fmt.Errorf("input of %d bytes exceeds the %d-byte (10 MiB) limit", n, MaxPayloadBytes)
	}
	return nil
}

// MaxMessageBytes is gRPC's message limit on both sides: a 10 MiB payload plus room for the
// envelope around it. gRPC's default of 4 MiB would refuse legitimate payloads.
const MaxMessageBytes = MaxPayloadBytes + 1<<20

// MaxProcessResultBytes is the largest JSON result of a process host function the host sends a
// shim: a synchronous spawn captures up to 10 MiB of each of stdout and stderr, and JSON escaping
// can grow text, so it has room for both streams escaped several times over: 64 MiB.
const MaxProcessResultBytes = 64 << 20

// ChunkBytes is the size of the pieces in which modules and artefacts are streamed by Compile.
const ChunkBytes = 1 << 20

// MaxModuleBytes is the largest WebAssembly module the host will compile: 256 MiB.
const MaxModuleBytes = 256 << 20

// Environment variables the host sets for the shim; the shim inherits no other environment.
const (
	// EnvShimLogLevel is the shim's hclog level name (default info).
	EnvShimLogLevel = "ASTRID_SHIM_LOG_LEVEL"
	// EnvShimFuel set to "1" starts the shim's engine with fuel metering, for [limits] fuel.
	EnvShimFuel = "ASTRID_SHIM_FUEL"
)

// ShimRuntimeEnv are the runtime settings every shim starts with (ClientConfig adds them):
//
//   - GOMAXPROCS=1: one P from the start (the shim runs with one, see cmd/astrid-shim). Set in
//     the environment, the runtime makes one P at start-up; set by runtime.GOMAXPROCS in main,
//     it makes one per core and then stops the world to free the others' caches: about 2 ms of
//     CPU more at every shim start on a 2-core machine, and the freed P's caches stayed in
//     memory: an idle shim holds ~0.5 MB less PSS with it (BenchmarkIdleMemory shim-pss-MB
//     3.86 -> 3.39). The sandbox helper that execs into the shim inherits it, and needs no more.
//   - TOKIO_WORKER_THREADS=1: wasmtime's WASI runs its blocking calls on a tokio runtime that
//     otherwise starts one worker thread per core; the shim's one guest thread needs one. A
//     thread fewer is its touched stack and its malloc arena: ~24 KB of an idle shim's PSS
//     (50 idle capsules, /proc/PID/smaps; 8.2 -> 7.1 threads a shim).
//   - GODEBUG=memprofilerate=0: no heap profile is ever taken of a shim, and sampling for one
//     fills the profiler's hash table and buckets: ~19 KB of an idle shim's PSS.
//   - GODEBUG=updatemaxprocs=0: the runtime does not start the goroutine that re-reads the CPU
//     limit to update GOMAXPROCS (the shim's is fixed at 1 anyway): ~30 KB of an idle shim's
//     PSS (50 idle capsules, /proc/PID/smaps; 3.38-3.39 -> 3.35-3.36 MB a shim).
//   - GODEBUG=profstackdepth=0: the runtime gives no thread the stack buffers of the block,
//     mutex and heap profilers (~1 KB each, a shim has 7 threads), which no shim uses (nor
//     are they taken: memprofilerate=0): 11-20 KB of an idle shim's PSS (3.348-3.350 ->
//     3.336-3.342 MB, alternated).
//
// Measured and left out: MALLOC_ARENA_MAX=1 (wasmtime's ~420 KB of malloc moves to the main
// arena, the total stays within 10 KB), and a GC or debug.FreeOSMemory once the capsule is
// loaded (+0.5 to +0.65 MB right after the boot: the first cycle maps the collector's own
// structures; an idle shim collects later instead, see shim/idlemem.go), and a lower GOGC
// (an idle shim's steady state 5.0-5.6 MB against 4.0 with the idle release).
var ShimRuntimeEnv = []string{"GOMAXPROCS=1", "TOKIO_WORKER_THREADS=1", "GODEBUG=memprofilerate=0,updatemaxprocs=0,profstackdepth=0"}

// StartTimeout bounds a shim's start, from exec to the go-plugin handshake.
const StartTimeout = 30 * time.Second

// ServerOptions adds the protocol's limits to the options go-plugin passes to a gRPC server.
func ServerOptions(opts []grpc.ServerOption) []grpc.ServerOption {
	// Servers may send up to a process result (the host's HostServices answering a spawn); what
	// they accept stays at MaxMessageBytes.
	return append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxProcessResultBytes+1<<20))
}

// NewServer builds a gRPC server with the protocol's limits, for servers whose connections are
// authenticated by the options passed in (ServeHostServices adds its own credentials).
func NewServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(ServerOptions(opts)...)
}

// ShimServer returns the constructor a shim gives go-plugin (ServeConfig.GRPCServer) for its
// server: the protocol's limits, and only connections that first send the token of the host that
// started it (whose SHA-256 is in EnvShimHostTokenSHA256). Any other connection is closed before
// gRPC reads from it, and refused is told (with the peer's pid as the shim sees it: 0 for a
// process outside its pid namespace). It fails when the environment has no token.
func ShimServer(refused func(peerPID int, err error)) (func([]grpc.ServerOption) *grpc.Server, error) {
	sum, err := shimTokenFromEnv()
	if err != nil {
		return nil, err
	}
	creds := onlyToken(sum, refused)
	return func(opts []grpc.ServerOption) *grpc.Server {
		return NewServer(append(opts, grpc.Creds(creds)))
	}, nil
}

// DialOptions raise the client side's limits to match the servers'.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	)}
}

// Handshake is the application's part of go-plugin's handshake: astrid-host only talks to an
// astrid-shim of the same protocol version. The cookie is not a security boundary; it keeps the
// shim from being run by hand. (shared/goplugin makes go-plugin's HandshakeConfig of it; the
// shim checks it in shim/pluginserve.)
const (
	HandshakeVersion     = 1
	HandshakeCookieKey   = "ASTRID_SHIM_COOKIE"
	HandshakeCookieValue = "astrid-go capsule shim: start me through astrid-host"
)

// Broker dials a service the host serves for the shim, by the id the host sent: go-plugin's
// GRPCBroker, or the shim's own (shim/pluginserve).
type Broker interface {
	DialWithOptions(id uint32, opts ...grpc.DialOption) (*grpc.ClientConn, error)
}

// DialHostServices connects the shim to the host's services served under id.
func DialHostServices(broker Broker, id uint32) (pb.HostServicesClient, *grpc.ClientConn, error) {
	// The shim receives process results, which may be larger than any other message.
	opts := append(DialOptions(), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxProcessResultBytes+1<<20)))
	conn, err := broker.DialWithOptions(id, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("dial host services (broker id %d): %w", id, err)
	}
	return pb.NewHostServicesClient(conn), conn, nil
}
