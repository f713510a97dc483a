//go:build wasip1

// Command raw is a test-only capsule that uses no SDK. It declares the Astrid host functions
// itself, in module extism:host/user with every argument and result an i64 block offset (the
// Extism calling convention the 0.5 guest crates use), and its export "call" calls the function
// its input names with the argument blocks its input gives, returning the function's result
// block exactly as the host wrote it (a HostResult keeps its status byte). A trap in the host
// function fails the call with the trap's message.
package main

import (
	"encoding/json"
	"strconv"
)

func main() {}

// The Extism kernel, declared here rather than taken from the SDK.

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env length
func length(h uint64) uint64

//go:wasmimport extism:host/env load_u8
func loadU8(addr uint64) uint32

//go:wasmimport extism:host/env store_u8
func storeU8(addr uint64, v uint32)

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(i uint64) uint32

//go:wasmimport extism:host/env output_set
func outputSet(h, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(h uint64)

// The Astrid host functions of issue 11, as astrid-sys 0.5 declares them.

//go:wasmimport extism:host/user astrid_fs_exists
func astridFsExists(path uint64) uint64

//go:wasmimport extism:host/user astrid_fs_mkdir
func astridFsMkdir(path uint64)

//go:wasmimport extism:host/user astrid_fs_readdir
func astridFsReaddir(path uint64) uint64

//go:wasmimport extism:host/user astrid_fs_stat
func astridFsStat(path uint64) uint64

//go:wasmimport extism:host/user astrid_fs_unlink
func astridFsUnlink(path uint64)

//go:wasmimport extism:host/user astrid_read_file
func astridReadFile(path uint64) uint64

//go:wasmimport extism:host/user astrid_write_file
func astridWriteFile(path, content uint64)

//go:wasmimport extism:host/user astrid_kv_get
func astridKvGet(key uint64) uint64

//go:wasmimport extism:host/user astrid_kv_set
func astridKvSet(key, value uint64)

//go:wasmimport extism:host/user astrid_kv_delete
func astridKvDelete(key uint64)

//go:wasmimport extism:host/user astrid_kv_list_keys
func astridKvListKeys(prefix uint64) uint64

//go:wasmimport extism:host/user astrid_kv_clear_prefix
func astridKvClearPrefix(prefix uint64) uint64

//go:wasmimport extism:host/user astrid_get_config
func astridGetConfig(key uint64) uint64

//go:wasmimport extism:host/user astrid_get_caller
func astridGetCaller() uint64

//go:wasmimport extism:host/user astrid_http_request
func astridHTTPRequest(req uint64) uint64

//go:wasmimport extism:host/user astrid_trigger_hook
func astridTriggerHook(req uint64) uint64

//go:wasmimport extism:host/user astrid_log
func astridLog(level, msg uint64)

//go:wasmimport extism:host/user astrid_clock_ms
func astridClockMs() uint64

//go:wasmimport extism:host/user astrid_check_capsule_capability
func astridCheckCapsuleCapability(req uint64) uint64

//go:wasmimport extism:host/user astrid_http_stream_start
func astridHTTPStreamStart(req uint64) uint64

//go:wasmimport extism:host/user astrid_http_stream_read
func astridHTTPStreamRead(handle uint64) uint64

//go:wasmimport extism:host/user astrid_http_stream_close
func astridHTTPStreamClose(handle uint64)

//go:wasmimport extism:host/user astrid_elicit
func astridElicit(req uint64) uint64

//go:wasmimport extism:host/user astrid_has_secret
func astridHasSecret(req uint64) uint64

// The approval and identity host functions of issue 13, as astrid-sys 0.5 declares them.

//go:wasmimport extism:host/user astrid_request_approval
func astridRequestApproval(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_resolve
func astridIdentityResolve(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_link
func astridIdentityLink(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_unlink
func astridIdentityUnlink(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_create_user
func astridIdentityCreateUser(req uint64) uint64

//go:wasmimport extism:host/user astrid_identity_list_links
func astridIdentityListLinks(req uint64) uint64

// Uplinks and the CLI socket (issue 13), as astrid-sys 0.5 declares them: every argument a block,
// and astrid_net_bind_unix's result a bare i64 (1), not a block.

//go:wasmimport extism:host/user astrid_uplink_register
func astridUplinkRegister(name, platform, profile uint64) uint64

//go:wasmimport extism:host/user astrid_uplink_send
func astridUplinkSend(uplinkID, platformUserID, content uint64) uint64

//go:wasmimport extism:host/user astrid_net_bind_unix
func astridNetBindUnix(path uint64) uint64

//go:wasmimport extism:host/user astrid_net_accept
func astridNetAccept(listener uint64) uint64

//go:wasmimport extism:host/user astrid_net_poll_accept
func astridNetPollAccept(listener uint64) uint64

//go:wasmimport extism:host/user astrid_net_read
func astridNetRead(stream uint64) uint64

//go:wasmimport extism:host/user astrid_net_write
func astridNetWrite(stream, data uint64)

//go:wasmimport extism:host/user astrid_net_close_stream
func astridNetCloseStream(stream uint64)

// funcs calls each host function with its argument blocks and returns its result block (0 for
// a function that returns nothing).
var funcs = map[string]func(a []uint64) uint64{
	"astrid_fs_exists":                func(a []uint64) uint64 { return astridFsExists(a[0]) },
	"astrid_fs_mkdir":                 func(a []uint64) uint64 { astridFsMkdir(a[0]); return 0 },
	"astrid_fs_readdir":               func(a []uint64) uint64 { return astridFsReaddir(a[0]) },
	"astrid_fs_stat":                  func(a []uint64) uint64 { return astridFsStat(a[0]) },
	"astrid_fs_unlink":                func(a []uint64) uint64 { astridFsUnlink(a[0]); return 0 },
	"astrid_read_file":                func(a []uint64) uint64 { return astridReadFile(a[0]) },
	"astrid_write_file":               func(a []uint64) uint64 { astridWriteFile(a[0], a[1]); return 0 },
	"astrid_kv_get":                   func(a []uint64) uint64 { return astridKvGet(a[0]) },
	"astrid_kv_set":                   func(a []uint64) uint64 { astridKvSet(a[0], a[1]); return 0 },
	"astrid_kv_delete":                func(a []uint64) uint64 { astridKvDelete(a[0]); return 0 },
	"astrid_kv_list_keys":             func(a []uint64) uint64 { return astridKvListKeys(a[0]) },
	"astrid_kv_clear_prefix":          func(a []uint64) uint64 { return astridKvClearPrefix(a[0]) },
	"astrid_get_config":               func(a []uint64) uint64 { return astridGetConfig(a[0]) },
	"astrid_get_caller":               func(a []uint64) uint64 { return astridGetCaller() },
	"astrid_http_request":             func(a []uint64) uint64 { return astridHTTPRequest(a[0]) },
	"astrid_trigger_hook":             func(a []uint64) uint64 { return astridTriggerHook(a[0]) },
	"astrid_log":                      func(a []uint64) uint64 { astridLog(a[0], a[1]); return 0 },
	"astrid_clock_ms":                 func(a []uint64) uint64 { return astridClockMs() },
	"astrid_check_capsule_capability": func(a []uint64) uint64 { return astridCheckCapsuleCapability(a[0]) },
	"astrid_http_stream_start":        func(a []uint64) uint64 { return astridHTTPStreamStart(a[0]) },
	"astrid_http_stream_read":         func(a []uint64) uint64 { return astridHTTPStreamRead(a[0]) },
	"astrid_http_stream_close":        func(a []uint64) uint64 { astridHTTPStreamClose(a[0]); return 0 },
	"astrid_elicit":                   func(a []uint64) uint64 { return astridElicit(a[0]) },
	"astrid_has_secret":               func(a []uint64) uint64 { return astridHasSecret(a[0]) },
	"astrid_request_approval":         func(a []uint64) uint64 { return astridRequestApproval(a[0]) },
	"astrid_identity_resolve":         func(a []uint64) uint64 { return astridIdentityResolve(a[0]) },
	"astrid_identity_link":            func(a []uint64) uint64 { return astridIdentityLink(a[0]) },
	"astrid_identity_unlink":          func(a []uint64) uint64 { return astridIdentityUnlink(a[0]) },
	"astrid_identity_create_user":     func(a []uint64) uint64 { return astridIdentityCreateUser(a[0]) },
	"astrid_identity_list_links":      func(a []uint64) uint64 { return astridIdentityListLinks(a[0]) },
	"astrid_uplink_register":          func(a []uint64) uint64 { return astridUplinkRegister(a[0], a[1], a[2]) },
	"astrid_uplink_send":              func(a []uint64) uint64 { return astridUplinkSend(a[0], a[1], a[2]) },
	// The bare i64 is returned as its decimal digits, so the test can see it.
	"astrid_net_bind_unix":    func(a []uint64) uint64 { return block(strconv.AppendUint(nil, astridNetBindUnix(a[0]), 10)) },
	"astrid_net_accept":       func(a []uint64) uint64 { return astridNetAccept(a[0]) },
	"astrid_net_poll_accept":  func(a []uint64) uint64 { return astridNetPollAccept(a[0]) },
	"astrid_net_read":         func(a []uint64) uint64 { return astridNetRead(a[0]) },
	"astrid_net_write":        func(a []uint64) uint64 { astridNetWrite(a[0], a[1]); return 0 },
	"astrid_net_close_stream": func(a []uint64) uint64 { astridNetCloseStream(a[0]); return 0 },
}

// request is the input of call: the function and its argument blocks (JSON base64 for bytes).
// Repeat calls the function that many times (default 1) and returns the last result, for
// benchmarks and load.
type request struct {
	Fn     string   `json:"fn"`
	Args   [][]byte `json:"args"`
	Repeat int      `json:"repeat"`
}

//go:wasmexport call
func call() int32 {
	in := make([]byte, inputLength())
	for i := range in {
		in[i] = byte(inputLoadU8(uint64(i)))
	}
	var req request
	if err := json.Unmarshal(in, &req); err != nil {
		return fail("bad input: " + err.Error())
	}
	f, ok := funcs[req.Fn]
	if !ok {
		return fail("no such host function: " + req.Fn)
	}
	var out uint64
	for n := 0; n < max(req.Repeat, 1); n++ {
		blocks := make([]uint64, len(req.Args))
		for i, a := range req.Args {
			blocks[i] = block(a)
		}
		out = f(blocks)
	}
	if out != 0 {
		outputSet(out, length(out))
	}
	return 0
}

// block copies b into a new kernel block.
func block(b []byte) uint64 {
	h := alloc(uint64(len(b)))
	for i, c := range b {
		storeU8(h+uint64(i), uint32(c))
	}
	return h
}

func fail(msg string) int32 {
	errorSet(block([]byte(msg)))
	return 1
}
