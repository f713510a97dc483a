//go:build !wasip1

package astrid

// Outside a capsule (GOOS other than wasip1) there is no kernel: the package
// still compiles, so that go vet, go doc and editors see the whole API on the
// host, but any call that would reach the kernel panics.

const noKernel = "astrid: the capsule kernel is only available when built with GOOS=wasip1 GOARCH=wasm and run by astrid-host"

func kernelAlloc(uint64) uint64                        { panic(noKernel) }
func kernelFree(uint64)                                { panic(noKernel) }
func kernelLength(uint64) uint64                       { panic(noKernel) }
func kernelLoadU8(uint64) uint32                       { panic(noKernel) }
func kernelLoadU64(uint64) uint64                      { panic(noKernel) }
func kernelStoreU8(uint64, uint32)                     { panic(noKernel) }
func kernelStoreU64(uint64, uint64)                    { panic(noKernel) }
func kernelInputLength() uint64                        { panic(noKernel) }
func kernelInputOffset() uint64                        { panic(noKernel) }
func kernelInputLoadU8(uint64) uint32                  { panic(noKernel) }
func kernelInputLoadU64(uint64) uint64                 { panic(noKernel) }
func kernelOutputSet(uint64, uint64)                   { panic(noKernel) }
func kernelErrorSet(uint64)                            { panic(noKernel) }
func kernelConfigGet(uint64) uint64                    { panic(noKernel) }
func kernelVarGet(uint64) uint64                       { panic(noKernel) }
func kernelVarSet(uint64, uint64)                      { panic(noKernel) }
func kernelGetLogLevel() int32                         { panic(noKernel) }
func kernelLogTrace(uint64)                            { panic(noKernel) }
func kernelLogDebug(uint64)                            { panic(noKernel) }
func kernelLogInfo(uint64)                             { panic(noKernel) }
func kernelLogWarn(uint64)                             { panic(noKernel) }
func kernelLogError(uint64)                            { panic(noKernel) }
func kernelHTTPRequest(uint64, uint64) uint64          { panic(noKernel) }
func kernelHTTPStatusCode() int32                      { panic(noKernel) }
func kernelHTTPHeaders() uint64                        { panic(noKernel) }
func hostIPCPublish(uint64, uint64)                    { panic(noKernel) }
func hostIPCSubscribe(uint64) uint64                   { panic(noKernel) }
func hostIPCUnsubscribe(uint64)                        { panic(noKernel) }
func hostIPCPoll(uint64) uint64                        { panic(noKernel) }
func hostIPCRecv(uint64, uint64) uint64                { panic(noKernel) }
func hostGetInterceptorHandles() uint64                { panic(noKernel) }
func hostSignalReady()                                 { panic(noKernel) }
func hostKernelRead(uint64, uint64, uint64)            { panic(noKernel) }
func hostKernelWrite(uint64, uint64, uint64)           { panic(noKernel) }
func hostSpawn(uint64) uint64                          { panic(noKernel) }
func hostSpawnBackground(uint64) uint64                { panic(noKernel) }
func hostReadProcessLogs(uint64) uint64                { panic(noKernel) }
func hostKillProcess(uint64) uint64                    { panic(noKernel) }
func hostWaitProcess(uint64) uint64                    { panic(noKernel) }
func hostSignalProcess(uint64) uint64                  { panic(noKernel) }
func hostWriteProcessStdin(uint64) uint64              { panic(noKernel) }
func hostFsExists(uint64) uint64                       { panic(noKernel) }
func hostFsMkdir(uint64)                               { panic(noKernel) }
func hostFsReaddir(uint64) uint64                      { panic(noKernel) }
func hostFsStat(uint64) uint64                         { panic(noKernel) }
func hostFsUnlink(uint64)                              { panic(noKernel) }
func hostReadFile(uint64) uint64                       { panic(noKernel) }
func hostWriteFile(uint64, uint64)                     { panic(noKernel) }
func hostKVGet(uint64) uint64                          { panic(noKernel) }
func hostKVSet(uint64, uint64)                         { panic(noKernel) }
func hostKVDelete(uint64)                              { panic(noKernel) }
func hostKVListKeys(uint64) uint64                     { panic(noKernel) }
func hostKVClearPrefix(uint64) uint64                  { panic(noKernel) }
func hostGetConfig(uint64) uint64                      { panic(noKernel) }
func hostGetCaller() uint64                            { panic(noKernel) }
func hostClockMS() uint64                              { panic(noKernel) }
func hostLog(uint64, uint64)                           { panic(noKernel) }
func hostCheckCapsuleCapability(uint64) uint64         { panic(noKernel) }
func hostElicit(uint64) uint64                         { panic(noKernel) }
func hostHasSecret(uint64) uint64                      { panic(noKernel) }
func hostTriggerHook(uint64) uint64                    { panic(noKernel) }
func hostHTTPRequest(uint64) uint64                    { panic(noKernel) }
func hostHTTPStreamStart(uint64) uint64                { panic(noKernel) }
func hostHTTPStreamRead(uint64) uint64                 { panic(noKernel) }
func hostHTTPStreamClose(uint64)                       { panic(noKernel) }
func hostUplinkRegister(uint64, uint64, uint64) uint64 { panic(noKernel) }
func hostUplinkSend(uint64, uint64, uint64) uint64     { panic(noKernel) }
func hostNetBindUnix(uint64) uint64                    { panic(noKernel) }
func hostNetAccept(uint64) uint64                      { panic(noKernel) }
func hostNetPollAccept(uint64) uint64                  { panic(noKernel) }
func hostNetRead(uint64) uint64                        { panic(noKernel) }
func hostNetWrite(uint64, uint64)                      { panic(noKernel) }
func hostNetCloseStream(uint64)                        { panic(noKernel) }
