package shared

import (
	"fmt"

	"github.com/astrid-go/astrid/shared/pb"
)

// Argument limits of the host functions, upstream's (astrid-capsule 0.5, host/util.rs and the
// functions' own): a guest's argument block longer than its limit traps the call before the
// shim reads it.
const (
	// MaxPathBytes bounds a file path: 4 KiB (MAX_PATH_LEN).
	MaxPathBytes = 4 << 10
	// MaxKVKeyBytes bounds a KV key or prefix: 4 KiB (MAX_KEY_LEN).
	MaxKVKeyBytes = 4 << 10
	// MaxHookRequestBytes bounds an astrid_trigger_hook request: 1 MiB.
	MaxHookRequestBytes = 1 << 20
	// MaxCapabilityRequestBytes bounds an astrid_check_capsule_capability request: 1 KiB.
	MaxCapabilityRequestBytes = 1 << 10
	// MaxStreamHandleBytes bounds an HTTP or socket stream handle: 1 KiB.
	MaxStreamHandleBytes = 1 << 10
	// MaxUplinkFieldBytes bounds an uplink's name, platform and profile, and the
	// platform_user_id of astrid_uplink_send: 512 bytes.
	MaxUplinkFieldBytes = 512
	// MaxUplinkIDArgBytes bounds the uplink_id block of astrid_uplink_send: 128 bytes (an id
	// over 64 bytes is then refused with "uplink_id too long").
	MaxUplinkIDArgBytes = 128
	// MaxUplinkContentBytes bounds the content of astrid_uplink_send: 1 MiB
	// (MAX_INBOUND_MESSAGE_BYTES).
	MaxUplinkContentBytes = 1 << 20
	// MaxNetFrameBytes bounds a frame on the CLI socket, in either direction: 10 MiB.
	MaxNetFrameBytes = 10 << 20
)

// MaxHostCallResultBytes bounds the result of one HostCall: gRPC's message limit less room for
// the response around it (a 10 MiB file or body fits, with its JSON).
const MaxHostCallResultBytes = MaxMessageBytes - 64<<10

// Result is how a host function's result reaches the guest.
type Result int

const (
	// ResultVoid: the function returns nothing; a failure traps the guest's call.
	ResultVoid Result = iota
	// ResultBytes: the function returns one block (0 when empty); a failure traps.
	ResultBytes
	// ResultHostResult: the function returns upstream's HostResult block, 0x00 followed by the
	// result or 0x01 followed by the error's UTF-8 text; only oversized arguments trap.
	ResultHostResult
	// ResultRawI64: the function returns a bare i64, not a block: the host's result is its
	// decimal digits (astrid_net_bind_unix returns 1, as upstream); a failure traps.
	ResultRawI64
)

// HostResult status bytes (upstream's HOST_RESULT_OK and HOST_RESULT_ERR).
const (
	HostResultOK  byte = 0x00
	HostResultErr byte = 0x01
)

// Arg is one argument block of a host function: what it is (for errors) and its limit. An
// argument whose Max is Ignored is never read (upstream's function ignores it, whatever the
// guest passes): the shim sends it empty.
type Arg struct {
	Name string
	Max  int
}

// Ignored as an Arg's Max marks an argument upstream ignores: the shim does not read it.
const Ignored = -1

// Ignored reports whether the argument is one upstream ignores.
func (a Arg) Ignored() bool { return a.Max == Ignored }

// HostCall is one host function carried by the HostCall RPC: its import name
// (extism:host/user), its operation, its arguments and how its result reaches the guest. The
// shim registers its imports from this table and checks arguments with CheckArgs before it
// sends them; the host checks them again with the same function and dispatches on Op.
type HostCall struct {
	Name   string
	Op     pb.HostOp
	Args   []Arg
	Result Result
}

var (
	pathArg    = []Arg{{"path", MaxPathBytes}}
	keyArg     = []Arg{{"key", MaxKVKeyBytes}}
	prefixArg  = []Arg{{"prefix", MaxKVKeyBytes}}
	requestArg = []Arg{{"request", MaxPayloadBytes}}
	handleArg  = []Arg{{"stream handle", MaxStreamHandleBytes}}
	// ignoredArg is the listener handle of astrid_net_accept and astrid_net_poll_accept and
	// the path of astrid_net_bind_unix: upstream ignores them (the host pre-binds the socket).
	ignoredArg = []Arg{{"listener handle", Ignored}}
)

// HostCalls are the host functions carried by HostCall, in the ABI's order. Adding one is an
// entry here, its op in shim.proto, and its handler in the host's hostCallHandlers.
var HostCalls = []HostCall{
	{"astrid_fs_exists", pb.HostOp_HOST_OP_FS_EXISTS, pathArg, ResultHostResult},
	{"astrid_fs_mkdir", pb.HostOp_HOST_OP_FS_MKDIR, pathArg, ResultVoid},
	{"astrid_fs_readdir", pb.HostOp_HOST_OP_FS_READDIR, pathArg, ResultHostResult},
	{"astrid_fs_stat", pb.HostOp_HOST_OP_FS_STAT, pathArg, ResultHostResult},
	{"astrid_fs_unlink", pb.HostOp_HOST_OP_FS_UNLINK, pathArg, ResultVoid},
	{"astrid_read_file", pb.HostOp_HOST_OP_READ_FILE, pathArg, ResultHostResult},
	{"astrid_write_file", pb.HostOp_HOST_OP_WRITE_FILE, []Arg{{"path", MaxPathBytes}, {"content", MaxPayloadBytes}}, ResultVoid},
	{"astrid_kv_get", pb.HostOp_HOST_OP_KV_GET, keyArg, ResultHostResult},
	{"astrid_kv_set", pb.HostOp_HOST_OP_KV_SET, []Arg{{"key", MaxKVKeyBytes}, {"value", MaxPayloadBytes}}, ResultVoid},
	{"astrid_kv_delete", pb.HostOp_HOST_OP_KV_DELETE, keyArg, ResultVoid},
	{"astrid_kv_list_keys", pb.HostOp_HOST_OP_KV_LIST_KEYS, prefixArg, ResultHostResult},
	{"astrid_kv_clear_prefix", pb.HostOp_HOST_OP_KV_CLEAR_PREFIX, prefixArg, ResultHostResult},
	{"astrid_http_request", pb.HostOp_HOST_OP_HTTP_REQUEST, requestArg, ResultBytes},
	{"astrid_trigger_hook", pb.HostOp_HOST_OP_TRIGGER_HOOK, []Arg{{"request", MaxHookRequestBytes}}, ResultBytes},
	{"astrid_check_capsule_capability", pb.HostOp_HOST_OP_CHECK_CAPSULE_CAPABILITY, []Arg{{"request", MaxCapabilityRequestBytes}}, ResultBytes},
	{"astrid_http_stream_start", pb.HostOp_HOST_OP_HTTP_STREAM_START, requestArg, ResultBytes},
	{"astrid_http_stream_read", pb.HostOp_HOST_OP_HTTP_STREAM_READ, handleArg, ResultBytes},
	{"astrid_http_stream_close", pb.HostOp_HOST_OP_HTTP_STREAM_CLOSE, handleArg, ResultVoid},
	{"astrid_elicit", pb.HostOp_HOST_OP_ELICIT, requestArg, ResultBytes},
	{"astrid_has_secret", pb.HostOp_HOST_OP_HAS_SECRET, keyArg, ResultBytes},
	{"astrid_request_approval", pb.HostOp_HOST_OP_REQUEST_APPROVAL, requestArg, ResultBytes},
	{"astrid_identity_resolve", pb.HostOp_HOST_OP_IDENTITY_RESOLVE, requestArg, ResultBytes},
	{"astrid_identity_link", pb.HostOp_HOST_OP_IDENTITY_LINK, requestArg, ResultBytes},
	{"astrid_identity_unlink", pb.HostOp_HOST_OP_IDENTITY_UNLINK, requestArg, ResultBytes},
	{"astrid_identity_create_user", pb.HostOp_HOST_OP_IDENTITY_CREATE_USER, requestArg, ResultBytes},
	{"astrid_identity_list_links", pb.HostOp_HOST_OP_IDENTITY_LIST_LINKS, requestArg, ResultBytes},
	{"astrid_uplink_register", pb.HostOp_HOST_OP_UPLINK_REGISTER, []Arg{{"name", MaxUplinkFieldBytes}, {"platform", MaxUplinkFieldBytes}, {"profile", MaxUplinkFieldBytes}}, ResultBytes},
	{"astrid_uplink_send", pb.HostOp_HOST_OP_UPLINK_SEND, []Arg{{"uplink_id", MaxUplinkIDArgBytes}, {"platform_user_id", MaxUplinkFieldBytes}, {"content", MaxUplinkContentBytes}}, ResultBytes},
	{"astrid_net_bind_unix", pb.HostOp_HOST_OP_NET_BIND_UNIX, []Arg{{"path", Ignored}}, ResultRawI64},
	{"astrid_net_accept", pb.HostOp_HOST_OP_NET_ACCEPT, ignoredArg, ResultBytes},
	{"astrid_net_poll_accept", pb.HostOp_HOST_OP_NET_POLL_ACCEPT, ignoredArg, ResultBytes},
	{"astrid_net_read", pb.HostOp_HOST_OP_NET_READ, handleArg, ResultBytes},
	{"astrid_net_write", pb.HostOp_HOST_OP_NET_WRITE, []Arg{handleArg[0], {"data", MaxNetFrameBytes}}, ResultVoid},
	{"astrid_net_close_stream", pb.HostOp_HOST_OP_NET_CLOSE_STREAM, handleArg, ResultVoid},
}

// HostCallOf returns the host function of op (of HostCalls or IPCCalls), false for an operation
// in neither table.
func HostCallOf(op pb.HostOp) (HostCall, bool) {
	for _, table := range [...][]HostCall{HostCalls, IPCCalls} {
		for _, f := range table {
			if f.Op == op {
				return f, true
			}
		}
	}
	return HostCall{}, false
}

// ArgTooLarge is the refusal of an argument block of n bytes over limit, in the words of
// upstream's get_safe_bytes.
func ArgTooLarge(n, limit int) error {
	return fmt.Errorf("memory allocation of %d bytes exceeds maximum allowed limit of %d bytes", n, limit)
}

// CheckLen checks the length n of an argument block before it is read: over Max, the refusal
// names the argument and gives upstream's text (ArgTooLarge). The shim-local host functions
// (astrid_log, astrid_get_config) check their arguments with it too.
func (a Arg) CheckLen(n int) error {
	if a.Ignored() {
		if n > 0 {
			return fmt.Errorf("%s: an ignored argument is sent empty, not %d bytes", a.Name, n)
		}
		return nil
	}
	if n > a.Max {
		return fmt.Errorf("%s: %w", a.Name, ArgTooLarge(n, a.Max))
	}
	return nil
}

// CheckArgLen checks the length n of argument i before it is read.
func (f HostCall) CheckArgLen(i, n int) error {
	if i < 0 || i >= len(f.Args) {
		return fmt.Errorf("%s takes %d argument(s), not %d", f.Name, len(f.Args), i+1)
	}
	return f.Args[i].CheckLen(n)
}

// CheckArgs checks a whole request: the number of arguments and each one's length. The shim
// checks each block with CheckArgLen before reading it; the host checks what arrives with this.
func (f HostCall) CheckArgs(args [][]byte) error {
	if len(args) != len(f.Args) {
		return fmt.Errorf("%s takes %d argument(s), got %d", f.Name, len(f.Args), len(args))
	}
	for i, a := range args {
		if err := f.CheckArgLen(i, len(a)); err != nil {
			return err
		}
	}
	return nil
}
