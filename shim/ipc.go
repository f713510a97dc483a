package shim

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/callwire"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// Publishes are pipelined: the shim checks each one as the host will and answers the guest at
// once, and sends them to the host in order, as Publish frames on the call connection
// (shared/callwire), each encoded into the frame's buffer as it is made, in batches of up to
// callwire.MaxPublishBatch messages or publishBatchBytes bytes (one larger message travels
// alone). A batch goes out when it is full, before any other host call, before the guest
// blocks, at the end of the call, and at the latest publishFlushDelay after its first message.
// Nothing waits for the host's answers but the backpressure: at most
// callwire.MaxPublishesInFlight batches are unanswered, and a guest that publishes faster than
// the host takes them waits for the oldest answer. The host reads a shim's frames in order, so a
// batch reaches the bus before the host call sent after it; what the host did not take it
// reports itself, at the guest's next host call or the end of its call (host/ipc.go). The shim
// reports only the batches it could not send.
const (
	publishBatchBytes = 1 << 20
	publishFlushDelay = time.Millisecond
	// keepBatchBuffer is the largest batch buffer kept for the next batch.
	keepBatchBuffer = 2 * publishBatchBytes
)

// ipcState is the shim's side of the capsule's IPC: the guard that checks each guest call
// exactly as the host will (package bus/guard, built from the LoadRequest), and the publishes
// not yet sent or not yet answered.
type ipcState struct {
	guard         *guard.Guard
	interceptJSON []byte // what astrid_get_interceptor_handles returns
	lastTopic     string // the topic of the guest's last publish (topicName)

	calls *callwire.ShimEnd

	sendMu sync.Mutex // held while a batch is taken and sent, so batches go out in order
	mu     sync.Mutex // guards the fields below
	// frame is the Publish frame being built: callwire.HeaderBytes of room for the header, then
	// the encoded publications (callwire.AppendPublication); spare is a sent frame's buffer,
	// kept for the next.
	frame, spare []byte
	count        int // publications in frame
	bytes        int // their payload bytes
	timer        *time.Timer
	timerArmed   bool
	lastID       uint64
	// inFlight are the batches sent and not answered yet: id → messages. answered is closed
	// (and replaced) whenever one is answered.
	inFlight map[uint64]int
	answered chan struct{}
	// lost and lostWhy are the publishes the shim could not send (the connection ended) and why
	// (the latest reason), not yet reported: the guest's next IPC call reports them once.
	lost    int
	lostWhy string
}

func newIPCState(req *pb.LoadRequest, calls *callwire.ShimEnd) (*ipcState, error) {
	cfg, err := guard.ConfigFromLoad(req)
	if err != nil {
		return nil, err
	}
	s := &ipcState{guard: guard.New(cfg, nil), interceptJSON: req.InterceptorHandles, calls: calls,
		inFlight: map[uint64]int{}, answered: make(chan struct{})}
	s.frame = make([]byte, callwire.HeaderBytes, 4<<10)
	s.timer = time.AfterFunc(time.Hour, s.send)
	s.timer.Stop()
	if len(s.interceptJSON) == 0 {
		s.interceptJSON = []byte("[]")
	}
	if calls != nil {
		calls.SetPublishAcks(s)
	}
	return s, nil
}

// publish checks one guest publish as the host will (guard.CheckPublish) and queues it, encoded
// into the batch's frame. payload may be a view of the guest's memory: it is copied.
func (s *ipcState) publish(topic string, payload []byte) error {
	if err := s.guard.CheckPublish(topic, payload); err != nil {
		return err
	}
	s.mu.Lock()
	if s.count > 0 && s.bytes+len(payload) > publishBatchBytes {
		// A batch stays within publishBatchBytes unless one message alone is larger.
		s.mu.Unlock()
		s.send()
		s.mu.Lock()
	}
	s.frame = callwire.AppendPublication(s.frame, topic, payload)
	s.count++
	s.bytes += len(payload)
	full := s.count >= callwire.MaxPublishBatch || s.bytes >= publishBatchBytes
	if !full && !s.timerArmed {
		s.timerArmed = true
		s.timer.Reset(publishFlushDelay)
	}
	s.mu.Unlock()
	if full {
		s.send()
	}
	return nil
}

// send sends the pending publishes as one Publish frame, after waiting, if
// callwire.MaxPublishesInFlight batches are unanswered, for the oldest answer. A batch that
// cannot be sent counts as lost.
func (s *ipcState) send() {
	id, frame, ok := s.take()
	if !ok {
		return
	}
	s.sent(id, frame, s.calls.SendPublishFrame(id, frame))
}

// take takes the pending publishes as the next batch to send: its id and its frame (room for
// the header, then the encoded publications), after waiting, if callwire.MaxPublishesInFlight
// batches are unanswered, for the oldest answer. ok is false when nothing is pending. When ok,
// take returns holding sendMu, so batches go out in order: the caller writes the frame and then
// calls sent, which lets it go.
func (s *ipcState) take() (id uint64, frame []byte, ok bool) {
	s.sendMu.Lock()
	s.mu.Lock()
	if s.timerArmed {
		s.timer.Stop()
		s.timerArmed = false
	}
	n := s.count
	if n == 0 {
		s.mu.Unlock()
		s.sendMu.Unlock()
		return 0, nil, false
	}
	frame = s.frame
	s.frame = s.spare
	if s.frame == nil {
		s.frame = make([]byte, callwire.HeaderBytes, 4<<10)
	}
	s.frame = s.frame[:callwire.HeaderBytes]
	s.spare = nil
	s.count, s.bytes = 0, 0
	for len(s.inFlight) >= callwire.MaxPublishesInFlight {
		answered := s.answered
		s.mu.Unlock()
		<-answered // Ended answers every batch when the connection ends
		s.mu.Lock()
	}
	s.lastID++
	id = s.lastID
	s.inFlight[id] = n
	s.mu.Unlock()
	return id, frame, true
}

// sent records that the batch take returned was written, or failed to be (err: its messages
// count as lost), keeps its buffer for the next batch, and lets sendMu go.
func (s *ipcState) sent(id uint64, frame []byte, err error) {
	s.mu.Lock()
	if cap(frame) <= keepBatchBuffer {
		s.spare = frame
	}
	s.mu.Unlock()
	if err != nil {
		s.answer(id, errors.New(status.Convert(err).Message()))
	}
	s.sendMu.Unlock()
}

// Published records the host's answer to the batch id (callwire.PublishAcks). The host reports
// what it did not take at the guest's next host call, so the answer only frees its place.
func (s *ipcState) Published(id uint64, _ error) {
	s.answer(id, nil)
}

// Ended records that no answer will come for the batches in flight: whether the host took them
// is unknown, so they count as lost (callwire.PublishAcks).
func (s *ipcState) Ended(err error) {
	s.mu.Lock()
	ids := make([]uint64, 0, len(s.inFlight))
	for id := range s.inFlight {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.answer(id, fmt.Errorf("the connection to the host ended: %v", err))
	}
}

// answer settles the batch id: err (if not nil) counts its messages as lost.
func (s *ipcState) answer(id uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.inFlight[id]
	if !ok {
		return
	}
	delete(s.inFlight, id)
	if err != nil {
		s.lost += n
		s.lostWhy = err.Error()
	}
	close(s.answered)
	s.answered = make(chan struct{})
}

// flush sends the pending publishes for a guest's IPC call (without waiting for the host's
// answers: the host publishes them before it reads what the shim sends next) and reports what
// the shim could not send since the last report, once.
func (s *ipcState) flush() error {
	s.send()
	return s.flushReport()
}

// flushReport reports what the shim could not send since the last report, once (nil if
// nothing).
func (s *ipcState) flushReport() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report()
}

// hasLost reports whether publishes the shim could not send wait to be reported.
func (s *ipcState) hasLost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost > 0
}

// report returns the publishes the shim could not send since the last report, as the guest's
// error, and forgets them. Called with s.mu held.
func (s *ipcState) report() error {
	if s.lost == 0 {
		return nil
	}
	err := callwire.NotTaken(s.lost, s.lostWhy)
	s.lost, s.lostWhy = 0, ""
	return err
}

// stop ends background sends (the capsule is unloading).
func (s *ipcState) stop() {
	s.mu.Lock()
	s.timer.Stop()
	s.timerArmed = false
	s.mu.Unlock()
}

// readArg copies the guest's memory block h, an argument of an IPC host function. Its size is
// bounded by the guest's memory; the guard checks its length against the contract's limits.
func readArg(c *wasmtime.Caller, k *kernel.Kernel, h uint64, what string) ([]byte, error) {
	b, err := k.ReadCaller(c, h)
	if err != nil {
		return nil, fmt.Errorf("%s handle %#x: %w", what, h, err)
	}
	return b, nil
}

// hostError turns a failed IPC RPC into the guest's trap message: the host's own words, or why
// the call was interrupted.
func (v *env) hostError(err error) error {
	if cause := interruption(v.call.ctx); cause != nil {
		return cause
	}
	return errors.New(status.Convert(err).Message())
}

// ipcPublish: astrid_ipc_publish(topic, payload).
func (v *env) ipcPublish(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	var blocks [2][]byte
	views, err := k.ViewCaller(c, blocks[:0], uint64(args[0].I64()), uint64(args[1].I64()))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	// payload is read in place: publish copies it into the batch before the guest runs again.
	return nil, v.ipc.publish(v.ipc.topicName(views[0]), views[1])
}

// topicName returns a publish's topic bytes as a string (the guard's errors may keep it, so not a
// view of the guest's memory): the previous publish's string when the bytes are the same, as they
// usually are, so that a publish allocates none. Host functions run on the call's goroutine, the
// only one that uses lastTopic.
func (s *ipcState) topicName(b []byte) string {
	if string(b) != s.lastTopic {
		s.lastTopic = string(b)
	}
	return s.lastTopic
}

// ipcCall makes one IPC host call (shared.IPCCalls) on the call connection (env.hostCall) and
// returns its result block.
func (v *env) ipcCall(op pb.HostOp, args ...[]byte) ([]byte, error) {
	resp, err := v.hostCall(&pb.HostCallRequest{Op: op, Args: args})
	if err != nil {
		return nil, err
	}
	if resp.Failed {
		return nil, errors.New(resp.Error)
	}
	return resp.Result, nil
}

// hostCall makes one host call on the call connection for the guest. The capsule's log lines
// go out first, and its pending publishes in the same write as the call
// (callwire.ShimEnd.HostCallAfterPublish: one system call, one wake-up of the host), so the
// host sees the guest's calls in the order it made them. Publishes the shim could not send are
// reported instead of making the call, once, as flush reports them. An error is the guest's
// trap message.
func (v *env) hostCall(req *pb.HostCallRequest) (*pb.HostCallResponse, error) {
	v.logs.flush()
	if v.ipc.hasLost() {
		if err := v.ipc.flush(); err != nil {
			return nil, err
		}
	}
	id, frame, pending := v.ipc.take()
	var sent func(error)
	if pending {
		sent = func(err error) { v.ipc.sent(id, frame, err) }
	}
	resp, err := v.calls.HostCallAfterPublish(v.call.ctx, id, frame, sent, req)
	if err != nil {
		if pending {
			// The batch's write failed with the call's: report it, as flush would have.
			if lost := v.ipc.flushReport(); lost != nil {
				return nil, lost
			}
		}
		return nil, v.hostError(err)
	}
	return resp, nil
}

// ipcSubscribe: astrid_ipc_subscribe(pattern) -> decimal handle.
func (v *env) ipcSubscribe(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	p, err := readArg(c, k, uint64(args[0].I64()), "pattern")
	if err != nil {
		return nil, err
	}
	pattern := string(p)
	if err := v.ipc.guard.CheckSubscribe(pattern); err != nil {
		return nil, err
	}
	res, err := v.ipcCall(pb.HostOp_HOST_OP_IPC_SUBSCRIBE, p)
	if err != nil {
		return nil, err
	}
	h, err := shared.ParseIPCUint("the host's handle", res)
	if err != nil {
		return nil, err
	}
	if err := v.ipc.guard.AddSubscription(h); err != nil {
		return nil, fmt.Errorf("the host's handle %d: %w", h, err)
	}
	return returnBytes(c, k, []byte(strconv.FormatUint(h, 10)))
}

// flushBeforeHost sends the capsule's log lines and pending publishes before a request to the
// host, so the host sees the guest's calls in the order it made them (and the call may now wait:
// its log lines are out).
func (v *env) flushBeforeHost() error {
	v.logs.flush()
	return v.ipc.flush()
}

// ipcHandle reads a handle argument (guard.ParseHandle) and checks it with check.
func (v *env) ipcHandle(c *wasmtime.Caller, k *kernel.Kernel, arg wasmtime.Val, check func(uint64) error) (uint64, error) {
	b, err := readArg(c, k, uint64(arg.I64()), "subscription")
	if err != nil {
		return 0, err
	}
	h, err := guard.ParseHandle(b)
	if err != nil {
		return 0, err
	}
	return h, check(h)
}

// ipcUnsubscribe: astrid_ipc_unsubscribe(handle).
func (v *env) ipcUnsubscribe(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	h, err := v.ipcHandle(c, k, args[0], v.ipc.guard.CheckUnsubscribe)
	if err != nil {
		return nil, err
	}
	if _, err := v.ipcCall(pb.HostOp_HOST_OP_IPC_UNSUBSCRIBE, shared.IPCUint(h)); err != nil {
		return nil, err
	}
	v.ipc.guard.Unsubscribed(h)
	return nil, nil
}

// ipcPoll: astrid_ipc_poll(handle) -> envelope JSON, without waiting.
func (v *env) ipcPoll(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	h, err := v.ipcHandle(c, k, args[0], v.ipc.guard.CheckHandle)
	if err != nil {
		return nil, err
	}
	env, err := v.ipcCall(pb.HostOp_HOST_OP_IPC_POLL, shared.IPCUint(h))
	if err != nil {
		return nil, err
	}
	defer v.calls.Recycle(env) // once the kernel has its copy
	return returnBytes(c, k, env)
}

// ipcRecv: astrid_ipc_recv(handle, timeout_ms) -> envelope JSON, waiting up to the timeout
// (clamped to 60 s); the wait ends at the call's time limit and when the capsule unloads.
func (v *env) ipcRecv(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	h, err := v.ipcHandle(c, k, args[0], v.ipc.guard.CheckHandle)
	if err != nil {
		return nil, err
	}
	tb, err := readArg(c, k, uint64(args[1].I64()), "timeout")
	if err != nil {
		return nil, err
	}
	timeout, err := guard.ParseTimeout(tb)
	if err != nil {
		return nil, err
	}
	env, err := v.ipcCall(pb.HostOp_HOST_OP_IPC_RECV, shared.IPCUint(h), shared.IPCUint(guard.ClampRecvTimeout(timeout)))
	if err != nil {
		return nil, err
	}
	defer v.calls.Recycle(env) // once the kernel has its copy
	return returnBytes(c, k, env)
}

// getInterceptorHandles: astrid_get_interceptor_handles() -> JSON array of the runtime-owned
// subscriptions of the capsule's [[interceptor]]s.
func (v *env) getInterceptorHandles(c *wasmtime.Caller, k *kernel.Kernel, _ []wasmtime.Val) ([]wasmtime.Val, error) {
	return returnBytes(c, k, v.ipc.interceptJSON)
}

// signalReady: astrid_signal_ready() — a run-loop capsule is set up and ready for messages.
func (v *env) signalReady(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	_, err := v.ipcCall(pb.HostOp_HOST_OP_SIGNAL_READY)
	return nil, err
}
