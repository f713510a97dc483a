// Command rawshim is a go-plugin server speaking the shim protocol with none of the runtime behind
// it, for the tests in package tests:
//
//   - the baseline of the benchmarks: Load only deserialises the artefact (the one it compiled,
//     else the one the host handed over at start, if any) and dials the host's services (if
//     served); calls (on the call connection, as astrid-shim's) of "http" make one Http broker
//     RPC to the host with the input as the URL, of "hostcall" one host call (its input is the
//     JSON of a pb.HostCallRequest) answered with the result; any other call echoes its input.
//     Comparing astrid-shim against it measures what the runtime adds to the protocol's own
//     costs;
//   - a compromised shim: a call of "forge" sends the host the IPC request or host call its
//     input describes, one that a correct shim would never send, and answers with the host's
//     reply; a call of "alloc" allocates as many MiB as its input says;
//   - a shim that reaches for another instance: Invoke of "intrude" dials each unix socket its
//     input names, as the host's services (publish, spawn) and as a shim's server (Info), and
//     answers with what each attempt got.
//
// It compiles modules (Compile) with its own engine so a host can load capsules with it.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/goplugin"
	"github.com/astrid-go/astrid/shared/pb"
)

// rawServer uses a bare wasmtime engine with the settings astrid-shim compiles under (epoch
// interruption on), so it can load astrid-shim's cached artefacts.
type rawServer struct {
	pb.UnimplementedShimServer
	engine *wasmtime.Engine
	module *wasmtime.Module
	// artefacts is the channel the host sends a cached artefact on (nil: none); artefact is
	// what Load took from it; compiled is Compile's output.
	artefacts *os.File
	artefact  *shared.Artefact
	compiled  []byte
	broker    *plugin.GRPCBroker
	host      pb.HostServicesClient
	calls     *callwire.ShimEnd
	// rawCalls is the call connection again, for frames no correct shim writes.
	rawCalls *os.File
	// publishID numbers the Publish frames of forge "publish"; published receives their answers.
	publishID uint64
	published chan error
}

func (s *rawServer) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{WasmtimeVersion: "rawshim", EngineConfig: "epoch=on", Pid: int32(os.Getpid())}, nil
}

func (s *rawServer) Compile(stream pb.Shim_CompileServer) error {
	wasm, err := shared.RecvChunks(stream.Recv, shared.MaxModuleBytes)
	if err != nil {
		return err
	}
	m, err := wasmtime.NewModule(s.engine, wasm)
	if err != nil {
		return err
	}
	art, err := m.Serialize()
	if err != nil {
		return err
	}
	s.compiled = art
	return shared.SendChunks(stream.Send, art)
}

func (s *rawServer) Shutdown(context.Context, *pb.ShutdownRequest) (*pb.ShutdownResponse, error) {
	return &pb.ShutdownResponse{}, nil
}

// forgery is the input of Invoke("forge"): one IPC request to send as is.
type forgery struct {
	RPC     string `json:"rpc"` // publish, subscribe, unsubscribe, poll, recv
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	Bytes   int    `json:"bytes"` // a payload of this many bytes instead
	Handle  uint64 `json:"handle"`
	Timeout uint64 `json:"timeout_ms"`
	// Op and Args are the host call of RPC "hostcall".
	Op   int32    `json:"op"`
	Args []string `json:"args"`
	// Kind and Length are the header of RPC "frame": a frame header alone, as is.
	Kind   uint8  `json:"kind"`
	Length uint32 `json:"length"`
	ID     uint64 `json:"id"`
	Body   []byte `json:"body"` // written after the header (base64 in the JSON)
}

// ipcCall makes one IPC host call on the call connection.
func (s *rawServer) ipcCall(ctx context.Context, op pb.HostOp, args ...[]byte) error {
	_, err := s.calls.HostCall(ctx, &pb.HostCallRequest{Op: op, Args: args})
	return err
}

// Published and Ended receive the host's answers to rawshim's Publish frames
// (callwire.PublishAcks).
func (s *rawServer) Published(_ uint64, err error) { s.published <- err }
func (s *rawServer) Ended(err error) {
	select {
	case s.published <- err:
	default:
	}
}

func (s *rawServer) forge(ctx context.Context, input []byte) error {
	var f forgery
	if err := json.Unmarshal(input, &f); err != nil {
		return err
	}
	payload := []byte(f.Payload)
	if f.Bytes > 0 {
		payload = []byte(`"` + strings.Repeat("x", f.Bytes-2) + `"`)
	}
	var err error
	switch f.RPC {
	case "publish":
		// A Publish frame, as a correct shim sends the guest's publishes; the host's answer.
		s.publishID++
		if err = s.calls.SendPublish(s.publishID, &pb.IpcPublishRequest{Messages: []*pb.IpcPublication{{Topic: f.Topic, Payload: payload}}}); err == nil {
			select {
			case err = <-s.published:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	case "subscribe":
		err = s.ipcCall(ctx, pb.HostOp_HOST_OP_IPC_SUBSCRIBE, []byte(f.Topic))
	case "unsubscribe":
		err = s.ipcCall(ctx, pb.HostOp_HOST_OP_IPC_UNSUBSCRIBE, shared.IPCUint(f.Handle))
	case "poll":
		err = s.ipcCall(ctx, pb.HostOp_HOST_OP_IPC_POLL, shared.IPCUint(f.Handle))
	case "recv":
		err = s.ipcCall(ctx, pb.HostOp_HOST_OP_IPC_RECV, shared.IPCUint(f.Handle), shared.IPCUint(f.Timeout))
	case "frame":
		h := make([]byte, callwire.HeaderBytes)
		binary.LittleEndian.PutUint32(h, f.Length)
		h[4] = f.Kind
		binary.LittleEndian.PutUint64(h[8:], f.ID)
		// The host reads it (and Body, if given) before this call's result, and stops this shim
		// instead.
		_, err = s.rawCalls.Write(append(h, f.Body...))
	case "hostcall":
		args := make([][]byte, len(f.Args))
		for i, a := range f.Args {
			args[i] = []byte(a)
		}
		_, err = s.calls.HostCall(ctx, &pb.HostCallRequest{Op: pb.HostOp(f.Op), Args: args})
	default:
		return fmt.Errorf("unknown rpc %q", f.RPC)
	}
	return err
}

// intrusion is the input of Invoke("intrude").
type intrusion struct {
	Sockets []string `json:"sockets"`
}

// intrude tries, on each socket, what another instance's connection could do: publish and spawn
// through the host's services, and make a shim publish through its server. Each attempt's result
// is "accepted" or the error it got.
func (s *rawServer) intrude(ctx context.Context, input []byte) ([]byte, error) {
	var in intrusion
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	results := map[string]map[string]string{}
	for _, path := range in.Sockets {
		conn, err := grpc.NewClient("passthrough:///"+path,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", path)
			}))
		if err != nil {
			return nil, err
		}
		host, shim := pb.NewHostServicesClient(conn), pb.NewShimClient(conn)
		attempts := map[string]func(context.Context) error{
			"http": func(ctx context.Context) error {
				_, err := host.Http(ctx, &pb.HttpRequest{})
				return err
			},
			"spawn": func(ctx context.Context) error {
				_, err := host.Process(ctx, &pb.ProcessRequest{Op: pb.ProcessOp_PROCESS_OP_SPAWN, Request: []byte(`{"cmd":"/bin/sh","args":["-c","echo intruder > pwned"]}`)})
				return err
			},
			"info": func(ctx context.Context) error {
				_, err := shim.Info(ctx, &pb.InfoRequest{})
				return err
			},
		}
		res := map[string]string{}
		for name, try := range attempts {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := try(actx); err != nil {
				res[name] = status.Convert(err).Message()
			} else {
				res[name] = "accepted"
			}
			cancel()
		}
		conn.Close()
		results[path] = res
	}
	return json.Marshal(results)
}

func (s *rawServer) Load(_ context.Context, req *pb.LoadRequest) (*pb.LoadResponse, error) {
	var m *wasmtime.Module
	var err error
	// As astrid-shim: the host sends a cached artefact before it asks for the load (the
	// benchmarks send it before the start), so it is taken here, once.
	if s.artefacts != nil {
		s.artefact, err = shared.ReceiveArtefact(s.artefacts)
		s.artefacts.Close()
		s.artefacts = nil
		if err != nil {
			return nil, err
		}
	}
	switch {
	case s.compiled != nil:
		m, err = wasmtime.NewModuleDeserialize(s.engine, s.compiled)
	case s.artefact != nil && s.artefact.Path != "":
		m, err = wasmtime.NewModuleDeserializeFile(s.engine, s.artefact.Path)
	case s.artefact != nil:
		m, err = wasmtime.NewModuleDeserialize(s.engine, s.artefact.Bytes)
	}
	if err != nil {
		return nil, err
	}
	if m != nil {
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

// serveCall answers one call of the call connection.
func (s *rawServer) serveCall(req *pb.InvokeRequest, reply func(*pb.InvokeResponse)) {
	resp, err := s.invoke(context.Background(), req)
	if err != nil {
		resp = &pb.InvokeResponse{Error: &pb.GuestError{Kind: pb.GuestError_GUEST_ERROR, Message: status.Convert(err).Message()}}
	}
	reply(resp)
}

func (s *rawServer) invoke(ctx context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
	if req.Export == "hostcall" {
		var hc pb.HostCallRequest
		if err := protojson.Unmarshal(req.Input, &hc); err != nil {
			return nil, err
		}
		resp, err := s.calls.HostCall(ctx, &hc)
		if err != nil {
			return nil, err
		}
		return &pb.InvokeResponse{Output: resp.Result}, nil
	}
	if req.Export == "forge" {
		if err := s.forge(ctx, req.Input); err != nil {
			return &pb.InvokeResponse{Output: []byte(status.Convert(err).Message())}, nil
		}
		return &pb.InvokeResponse{Output: []byte("accepted")}, nil
	}
	if req.Export == "alloc" {
		// A shim a guest escaped into, taking memory: the input is a count of MiB to allocate
		// and touch; the output says it survived that.
		n, err := strconv.Atoi(string(req.Input))
		if err != nil {
			return nil, err
		}
		held := make([][]byte, 0, n)
		for range n {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			held = append(held, b)
		}
		return &pb.InvokeResponse{Output: []byte(fmt.Sprintf("survived %d", len(held)))}, nil
	}
	if req.Export == "intrude" {
		out, err := s.intrude(ctx, req.Input)
		if err != nil {
			return nil, err
		}
		return &pb.InvokeResponse{Output: out}, nil
	}
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
	runtime.GOMAXPROCS(1) // as astrid-shim runs: the baseline pays the same scheduling
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	engine := wasmtime.NewEngineWithConfig(cfg)
	sock, err := shared.InheritedSocket(shared.EnvShimArtefactSocket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawshim: %v\n", err)
		os.Exit(1)
	}
	// A second descriptor of the call connection's way to the host, to write forged frames on.
	_, fd, err := callwire.ShimCallsFDs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawshim: %v\n", err)
		os.Exit(1)
	}
	dup, err := unix.Dup(fd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawshim: %v\n", err)
		os.Exit(1)
	}
	conn, err := callwire.InheritedConn()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawshim: %v\n", err)
		os.Exit(1)
	}
	calls := callwire.NewShimEnd(conn)
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn})
	server, err := shared.ShimServer(func(peerPID int, err error) {
		logger.Error("refused a connection to the shim's server", "peer_pid", peerPID, "error", err)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "rawshim: %v\n", err)
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: goplugin.Handshake,
		Plugins: plugin.PluginSet{shared.PluginName: &goplugin.ShimPlugin{
			NewShimServer: func(b *plugin.GRPCBroker) pb.ShimServer {
				s := &rawServer{engine: engine, broker: b, artefacts: sock, calls: calls, rawCalls: os.NewFile(uintptr(dup), "call connection"), published: make(chan error, 1)}
				calls.SetPublishAcks(s)
				go calls.Serve(s.serveCall)
				return s
			},
		}},
		GRPCServer: server,
		Logger:     logger,
	})
}
