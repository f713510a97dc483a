//go:build wasip1

package astrid

// The Extism kernel imports (docs/abi.md#extismhostenv-the-kernel). A handle is a u64 offset of a block
// in the kernel memory, which is separate from the guest's linear memory; 0
// means none. Go's wasmimport does not allow uint8, so byte values cross as
// uint32.

//go:wasmimport extism:host/env alloc
func kernelAlloc(n uint64) uint64

//go:wasmimport extism:host/env free
func kernelFree(h uint64)

//go:wasmimport extism:host/env length
func kernelLength(h uint64) uint64

//go:wasmimport extism:host/env load_u8
func kernelLoadU8(addr uint64) uint32

//go:wasmimport extism:host/env load_u64
func kernelLoadU64(addr uint64) uint64

//go:wasmimport extism:host/env store_u8
func kernelStoreU8(addr uint64, v uint32)

//go:wasmimport extism:host/env store_u64
func kernelStoreU64(addr uint64, v uint64)

//go:wasmimport extism:host/env input_length
func kernelInputLength() uint64

//go:wasmimport extism:host/env input_offset
func kernelInputOffset() uint64

//go:wasmimport extism:host/env input_load_u8
func kernelInputLoadU8(i uint64) uint32

//go:wasmimport extism:host/env input_load_u64
func kernelInputLoadU64(i uint64) uint64

//go:wasmimport extism:host/env output_set
func kernelOutputSet(h, n uint64)

//go:wasmimport extism:host/env error_set
func kernelErrorSet(h uint64)

//go:wasmimport extism:host/env config_get
func kernelConfigGet(key uint64) uint64

//go:wasmimport extism:host/env var_get
func kernelVarGet(key uint64) uint64

//go:wasmimport extism:host/env var_set
func kernelVarSet(key, value uint64)

//go:wasmimport extism:host/env get_log_level
func kernelGetLogLevel() int32

//go:wasmimport extism:host/env log_trace
func kernelLogTrace(msg uint64)

//go:wasmimport extism:host/env log_debug
func kernelLogDebug(msg uint64)

//go:wasmimport extism:host/env log_info
func kernelLogInfo(msg uint64)

//go:wasmimport extism:host/env log_warn
func kernelLogWarn(msg uint64)

//go:wasmimport extism:host/env log_error
func kernelLogError(msg uint64)

//go:wasmimport extism:host/env http_request
func kernelHTTPRequest(req, body uint64) uint64

//go:wasmimport extism:host/env http_status_code
func kernelHTTPStatusCode() int32

//go:wasmimport extism:host/env http_headers
func kernelHTTPHeaders() uint64

// The Astrid host functions (docs/abi.md#extismhostuser-the-astrid-host-functions), in extism:host/user. Every parameter
// is a kernel block handle; numbers (subscription handles, timeouts) cross as
// decimal ASCII; an error traps the call.

//go:wasmimport extism:host/user astrid_ipc_publish
func hostIPCPublish(topic, payload uint64)

//go:wasmimport extism:host/user astrid_ipc_subscribe
func hostIPCSubscribe(pattern uint64) uint64

//go:wasmimport extism:host/user astrid_ipc_unsubscribe
func hostIPCUnsubscribe(handle uint64)

//go:wasmimport extism:host/user astrid_ipc_poll
func hostIPCPoll(handle uint64) uint64

//go:wasmimport extism:host/user astrid_ipc_recv
func hostIPCRecv(handle, timeoutMS uint64) uint64

//go:wasmimport extism:host/user astrid_get_interceptor_handles
func hostGetInterceptorHandles() uint64

//go:wasmimport extism:host/user astrid_signal_ready
func hostSignalReady()

// The bulk kernel copies (docs/abi.md#astrid_kernel_read-and-astrid_kernel_write): n bytes
// between a kernel address inside one live block and an address of the capsule's linear memory.

//go:wasmimport extism:host/user astrid_kernel_read
func hostKernelRead(addr, dst, n uint64)

//go:wasmimport extism:host/user astrid_kernel_write
func hostKernelWrite(addr, src, n uint64)

// The process host functions (docs/abi.md#processes): each takes a JSON request
// block and returns a JSON result block.

//go:wasmimport extism:host/user astrid_spawn_host
func hostSpawn(req uint64) uint64

//go:wasmimport extism:host/user astrid_spawn_background_host
func hostSpawnBackground(req uint64) uint64

//go:wasmimport extism:host/user astrid_read_process_logs_host
func hostReadProcessLogs(req uint64) uint64

//go:wasmimport extism:host/user astrid_kill_process_host
func hostKillProcess(req uint64) uint64

//go:wasmimport extism:host/user astrid_wait_process_host
func hostWaitProcess(req uint64) uint64

//go:wasmimport extism:host/user astrid_signal_process_host
func hostSignalProcess(req uint64) uint64

//go:wasmimport extism:host/user astrid_write_process_stdin_host
func hostWriteProcessStdin(req uint64) uint64

// The files, KV, HTTP, sys and hooks host functions (docs/abi.md), with astrid-sys 0.5's
// declarations. Functions marked HostResult return upstream's status-byte block; the void ones
// trap the call when they fail.

//go:wasmimport extism:host/user astrid_fs_exists
func hostFsExists(path uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_fs_mkdir
func hostFsMkdir(path uint64)

//go:wasmimport extism:host/user astrid_fs_readdir
func hostFsReaddir(path uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_fs_stat
func hostFsStat(path uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_fs_unlink
func hostFsUnlink(path uint64)

//go:wasmimport extism:host/user astrid_read_file
func hostReadFile(path uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_write_file
func hostWriteFile(path, content uint64)

//go:wasmimport extism:host/user astrid_kv_get
func hostKVGet(key uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_kv_set
func hostKVSet(key, value uint64)

//go:wasmimport extism:host/user astrid_kv_delete
func hostKVDelete(key uint64)

//go:wasmimport extism:host/user astrid_kv_list_keys
func hostKVListKeys(prefix uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_kv_clear_prefix
func hostKVClearPrefix(prefix uint64) uint64 // HostResult

//go:wasmimport extism:host/user astrid_get_config
func hostGetConfig(key uint64) uint64

//go:wasmimport extism:host/user astrid_get_caller
func hostGetCaller() uint64

//go:wasmimport extism:host/user astrid_clock_ms
func hostClockMS() uint64

//go:wasmimport extism:host/user astrid_log
func hostLog(level, msg uint64)

//go:wasmimport extism:host/user astrid_check_capsule_capability
func hostCheckCapsuleCapability(req uint64) uint64

//go:wasmimport extism:host/user astrid_elicit
func hostElicit(req uint64) uint64

//go:wasmimport extism:host/user astrid_has_secret
func hostHasSecret(req uint64) uint64

//go:wasmimport extism:host/user astrid_trigger_hook
func hostTriggerHook(req uint64) uint64

//go:wasmimport extism:host/user astrid_http_request
func hostHTTPRequest(req uint64) uint64

//go:wasmimport extism:host/user astrid_http_stream_start
func hostHTTPStreamStart(req uint64) uint64

//go:wasmimport extism:host/user astrid_http_stream_read
func hostHTTPStreamRead(handle uint64) uint64

//go:wasmimport extism:host/user astrid_http_stream_close
func hostHTTPStreamClose(handle uint64)

//go:wasmimport extism:host/user astrid_uplink_register
func hostUplinkRegister(name, platform, profile uint64) uint64

//go:wasmimport extism:host/user astrid_uplink_send
func hostUplinkSend(uplinkID, platformUserID, content uint64) uint64

// astrid_net_bind_unix returns a bare i64 (1), not a block.
//
//go:wasmimport extism:host/user astrid_net_bind_unix
func hostNetBindUnix(path uint64) uint64

//go:wasmimport extism:host/user astrid_net_accept
func hostNetAccept(listener uint64) uint64

//go:wasmimport extism:host/user astrid_net_poll_accept
func hostNetPollAccept(listener uint64) uint64

//go:wasmimport extism:host/user astrid_net_read
func hostNetRead(stream uint64) uint64

//go:wasmimport extism:host/user astrid_net_write
func hostNetWrite(stream, data uint64)

//go:wasmimport extism:host/user astrid_net_close_stream
func hostNetCloseStream(stream uint64)
