package host

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/host/process"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// Process runs one process host function for the guest. Every rule is the host's (package
// process): the command must be in [capabilities] host_process, env and cwd are checked,
// processes belong to this instance and the calling principal, and they run in the sandbox. The
// call's context ends when the guest call does (its time limit, or the capsule unloading), which
// ends a blocking spawn or wait.
func (s *hostServices) Process(ctx context.Context, req *pb.ProcessRequest) (_ *pb.ProcessResponse, err error) {
	op := process.Op(req.Op)
	f, ok := shared.ProcessFuncOf(req.Op)
	if !ok {
		return nil, s.inst.compromised(fmt.Errorf("unknown process operation %d", req.Op))
	}
	defer func() { s.recordHostCall(f.Name, 1, failedIf(err)) }()
	procs, err := s.inst.processes()
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	result, err := procs.Handle(ctx, op, s.inst.effectivePrincipal(), req.Request)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if len(result) > shared.MaxProcessResultBytes {
		return nil, status.Errorf(codes.ResourceExhausted, "%s: the result is %d bytes; the limit is %d bytes", op, len(result), shared.MaxProcessResultBytes)
	}
	return &pb.ProcessResponse{Result: result}, nil
}

// processes returns the instance's process manager, made on the first process request. It fails
// once the instance is stopping (its processes are being killed) and when the host has no
// sandbox to start processes in.
func (i *Instance) processes() (*process.Manager, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.stopping || i.hasCrashed {
		return nil, fmt.Errorf("capsule %s is stopping; it cannot start or manage processes", i.ID())
	}
	if i.host.cfg.Sandbox == nil {
		return nil, fmt.Errorf("capsule %s cannot run processes: this host has no sandbox to run them in", i.ID())
	}
	if i.procs == nil {
		caps := i.manifest.Capabilities
		i.procs = process.New(process.Config{
			CapsuleID:     i.ID(),
			Instance:      i.ipc.sourceID,
			Allowed:       caps.HostProcess,
			Network:       caps.ProcessNetwork,
			Workspace:     i.host.cfg.Workspace,
			Hidden:        []string{i.host.cfg.StateDir, i.host.runDir}, // the module cache and the shims' sockets
			MaxBackground: i.manifest.Limits.MaxProcesses,
			MemoryBytes:   int64(i.manifest.Limits.ProcessMemory),
			Sandbox:       i.host.cfg.Sandbox,
			TmpRoot:       filepath.Join(i.host.runDir, "tmp"),
			PassEnv:       i.host.cfg.PassEnv,
			Logger:        i.log.Named("process"),
		})
	}
	return i.procs, nil
}

// closeProcesses kills and reaps every process the instance started; later process requests
// fail. It is called when the instance stops or crashes.
func (i *Instance) closeProcesses() {
	i.mu.Lock()
	procs := i.procs
	i.mu.Unlock()
	if procs == nil {
		return
	}
	if err := procs.Close(); err != nil {
		i.log.Warn("ending the capsule's processes", "error", err)
	}
}
