package host

import (
	"context"

	"github.com/astrid-go/astrid/host/internal/fsroot"
	"github.com/astrid-go/astrid/shared/pb"
)

// The filesystem host functions (astrid_fs_exists, _mkdir, _readdir, _stat, _unlink,
// astrid_read_file, astrid_write_file). The shim has no filesystem: the host performs each one
// in its own filesystem, through package fsroot (schemes, the fs_read/fs_write gate, resolution
// beneath the workspace or the principal's home, limits). Every failure is the guest's: a
// HostResult error for exists, readdir, stat and read_file, the trap text for the others.
func init() {
	hostCallHandlers[pb.HostOp_HOST_OP_FS_EXISTS] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		ok, err := s.fsSpace().Exists(args[0])
		if err != nil {
			return nil, guestFailed("%s", err)
		}
		if ok {
			return []byte("true"), nil
		}
		return nil, nil
	}
	hostCallHandlers[pb.HostOp_HOST_OP_FS_MKDIR] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		return nil, fsFailed(s.fsSpace().Mkdir(args[0]))
	}
	hostCallHandlers[pb.HostOp_HOST_OP_FS_READDIR] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		out, err := s.fsSpace().Readdir(args[0])
		return out, fsFailed(err)
	}
	hostCallHandlers[pb.HostOp_HOST_OP_FS_STAT] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		out, err := s.fsSpace().Stat(args[0])
		return out, fsFailed(err)
	}
	hostCallHandlers[pb.HostOp_HOST_OP_FS_UNLINK] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		return nil, fsFailed(s.fsSpace().Unlink(args[0]))
	}
	hostCallHandlers[pb.HostOp_HOST_OP_READ_FILE] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		out, err := s.fsSpace().ReadFile(args[0])
		return out, fsFailed(err)
	}
	hostCallHandlers[pb.HostOp_HOST_OP_WRITE_FILE] = func(_ context.Context, s *hostServices, args [][]byte) ([]byte, error) {
		return nil, fsFailed(s.fsSpace().WriteFile(args[0], args[1]))
	}
}

// fsFailed turns an fsroot failure into the guest's (nil stays nil).
func fsFailed(err error) error {
	if err == nil {
		return nil
	}
	return guestFailed("%s", err)
}

// fsSpace is what the instance's filesystem host functions reach now: the workspace and the home
// of the principal they act for (the caller's during an interceptor invocation), behind the
// capsule's fs_read and fs_write, never the host's state or runtime directory.
func (s *hostServices) fsSpace() *fsroot.Space {
	i := s.inst
	caps := i.manifest.Capabilities
	return &fsroot.Space{
		Workspace: i.host.cfg.Workspace,
		StateDir:  i.host.cfg.StateDir,
		RunDir:    i.host.runDir,
		Principal: i.effectivePrincipal(),
		Capsule:   i.ID(),
		FSRead:    caps.FSRead,
		FSWrite:   caps.FSWrite,
	}
}
