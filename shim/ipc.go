package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/kernel"
)

// IPC limits of the guest-facing functions (upstream's).
const (
	maxHandleBytes  = 32     // a subscription handle or timeout block
	maxRecvTimeout  = 60_000 // ms; longer recv timeouts are clamped
	maxGuestPayload = 10 << 20
)

// Publishes are pipelined: the shim checks each one as the host will and answers the guest at
// once, and sends them to the host in order, in batches of up to publishBatchMessages messages or
// publishBatchBytes bytes, before any other IPC call, before the guest blocks, at the end of the
// call, and at the latest publishFlushDelay after the first message of a batch.
const (
	publishBatchMessages = 512
	publishBatchBytes    = 1 << 20
	publishFlushDelay    = time.Millisecond
	publishRPCTimeout    = 30 * time.Second
)

// ipcState is the shim's view of the capsule's IPC: its ACLs and quota (to check as the host
// will), its subscription handles, and the publishes not yet sent.
type ipcState struct {
	capsuleID     string
	publishACL    []string
	subscribeACL  []string
	limiter       *bus.RateLimiter
	handles       map[uint64]bool // handles the host gave this capsule
	interceptors  map[uint64]bool // runtime-owned handles: pollable, not unsubscribable
	interceptJSON []byte

	host *hostConn

	sendMu  sync.Mutex // held while a batch is sent, so batches arrive in order
	mu      sync.Mutex // guards the fields below
	pending []*pb.IpcPublication
	bytes   int
	timer   *time.Timer
	sending bool  // a full batch is being sent in the background
	sendErr error // the first failure of a background send, reported at the next IPC call
}

func newIPCState(req *pb.LoadRequest, host *hostConn) (*ipcState, error) {
	s := &ipcState{
		capsuleID:     req.CapsuleId,
		publishACL:    req.IpcPublish,
		subscribeACL:  req.IpcSubscribe,
		limiter:       bus.NewRateLimiter(req.IpcBytesPerSec, time.Now),
		handles:       map[uint64]bool{},
		interceptors:  map[uint64]bool{},
		interceptJSON: req.InterceptorHandles,
		host:          host,
	}
	if len(s.interceptJSON) == 0 {
		s.interceptJSON = []byte("[]")
	}
	var handles []struct {
		HandleID uint64 `json:"handle_id"`
	}
	if err := json.Unmarshal(s.interceptJSON, &handles); err != nil {
		return nil, fmt.Errorf("interceptor handles from the host: %w", err)
	}
	for _, h := range handles {
		s.interceptors[h.HandleID] = true
	}
	return s, nil
}

// publish checks one guest publish in upstream's order and queues it.
func (s *ipcState) publish(topic string, topicLen int, payload []byte) error {
	if topicLen > bus.MaxTopicBytes {
		return errors.New("Topic exceeds maximum allowed length (256 bytes)")
	}
	// Upstream charges the quota before it reads the payload, so a refused publish still counts.
	if err := s.limiter.Charge(len(payload)); err != nil {
		return err
	}
	if err := bus.CheckPublishTopic(topic); err != nil {
		return err
	}
	if err := bus.CheckPublishACL(s.capsuleID, topic, s.publishACL); err != nil {
		return err
	}
	if !json.Valid(payload) {
		return errors.New("IPC payload is not valid JSON")
	}
	s.mu.Lock()
	s.pending = append(s.pending, &pb.IpcPublication{Topic: topic, Payload: payload})
	s.bytes += len(payload)
	full := len(s.pending) >= publishBatchMessages || s.bytes >= publishBatchBytes
	switch {
	case !full:
		if s.timer == nil {
			s.timer = time.AfterFunc(publishFlushDelay, func() { _ = s.flush(context.Background()) })
		}
		s.mu.Unlock()
		return nil
	case s.sending:
		// The previous full batch is still on its way: wait for it and send this one (one batch
		// in flight at most, so a guest cannot queue without bound).
		s.mu.Unlock()
		return s.flush(context.Background())
	default:
		// Send the full batch in the background while the guest goes on publishing.
		s.sending = true
		s.mu.Unlock()
		go func() {
			_ = s.flush(context.Background()) // a failure is kept in sendErr for the guest's next IPC call
			s.mu.Lock()
			s.sending = false
			s.mu.Unlock()
		}()
		return nil
	}
}

// flush sends the pending publishes, and reports any earlier background failure.
func (s *ipcState) flush(ctx context.Context) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	batch := s.pending
	s.pending, s.bytes = nil, 0
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	err := s.sendErr
	s.mu.Unlock()
	if err != nil || len(batch) == 0 {
		return err
	}
	client, err := s.host.get()
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, publishRPCTimeout)
		_, err = client.IpcPublish(rctx, &pb.IpcPublishRequest{Messages: batch})
		cancel()
	}
	if err != nil {
		err = fmt.Errorf("the host did not take %d published message(s): %s", len(batch), status.Convert(err).Message())
		s.mu.Lock()
		if s.sendErr == nil {
			s.sendErr = err
		}
		s.mu.Unlock()
	}
	return err
}

// takePending hands the pending publishes to the caller, which sends them with its own request
// (IpcRecv's publish_first). It first waits for a background send in flight, so the caller's
// batch cannot overtake an earlier one. It reports a background send's failure.
func (s *ipcState) takePending() ([]*pb.IpcPublication, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	batch := s.pending
	s.pending, s.bytes = nil, 0
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	return batch, s.sendErr
}

// stop ends background sends (the capsule is unloading).
func (s *ipcState) stop() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
}

// readHandle reads a decimal subscription handle block, with upstream's errors.
func readHandle(c *wasmtime.Caller, k *kernel.Kernel, h uint64) (uint64, error) {
	b, err := readLimited(c, k, h, maxHandleBytes, "Subscription handle exceeds maximum allowed length")
	if err != nil {
		return 0, err
	}
	if !utf8.Valid(b) {
		return 0, fmt.Errorf("Subscription handle is not valid UTF-8: invalid utf-8 sequence")
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Invalid subscription handle format: %v", err.(*strconv.NumError).Err)
	}
	return n, nil
}

// readLimited reads a block after checking its length, as upstream's get_safe_bytes does.
func readLimited(c *wasmtime.Caller, k *kernel.Kernel, h uint64, limit int, tooLong string) ([]byte, error) {
	b, err := k.ReadCaller(c, h)
	if err != nil {
		return nil, fmt.Errorf("handle %#x: %w", h, err)
	}
	if len(b) > limit {
		return nil, errors.New(tooLong)
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
	topicBytes, err := k.ReadCaller(c, uint64(args[0].I64()))
	if err != nil {
		return nil, fmt.Errorf("topic handle: %w", err)
	}
	payload, err := k.ReadCaller(c, uint64(args[1].I64()))
	if err != nil {
		return nil, fmt.Errorf("payload handle: %w", err)
	}
	if len(payload) > maxGuestPayload {
		return nil, fmt.Errorf("memory allocation of %d bytes exceeds maximum allowed limit of %d bytes", len(payload), maxGuestPayload)
	}
	return nil, v.ipc.publish(string(topicBytes), len(topicBytes), payload)
}

// ipcSubscribe: astrid_ipc_subscribe(pattern) -> decimal handle.
func (v *env) ipcSubscribe(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	p, err := readLimited(c, k, uint64(args[0].I64()), bus.MaxTopicBytes, "Topic pattern exceeds maximum allowed length (256 bytes)")
	if err != nil {
		return nil, err
	}
	pattern := string(p)
	if err := bus.CheckSubscribePattern(pattern); err != nil {
		return nil, err
	}
	if err := bus.CheckSubscribeACL(v.ipc.capsuleID, pattern, v.ipc.subscribeACL); err != nil {
		return nil, err
	}
	if len(v.ipc.handles)+len(v.ipc.interceptors) >= bus.MaxSubscriptions {
		return nil, errors.New(bus.ErrTextSubscriptionLimit)
	}
	client, err := v.ipcClient()
	if err != nil {
		return nil, err
	}
	resp, err := client.IpcSubscribe(v.call.ctx, &pb.IpcSubscribeRequest{Pattern: pattern})
	if err != nil {
		return nil, v.hostError(err)
	}
	v.ipc.handles[resp.Handle] = true
	return returnBytes(c, k, []byte(strconv.FormatUint(resp.Handle, 10)))
}

// ipcClient flushes the capsule's log lines and pending publishes (so the host sees the guest's
// calls in order, and a long-running capsule's lines as it goes) and returns the host client.
func (v *env) ipcClient() (pb.HostServicesClient, error) {
	// The call may now wait (recv): let the capsule's log lines out first.
	v.logs.flush()
	if err := v.ipc.flush(v.call.ctx); err != nil {
		return nil, err
	}
	return v.host.get()
}

// ipcHandle reads a handle argument and checks it belongs to this capsule.
func (v *env) ipcHandle(c *wasmtime.Caller, k *kernel.Kernel, arg wasmtime.Val) (uint64, error) {
	h, err := readHandle(c, k, uint64(arg.I64()))
	if err != nil {
		return 0, err
	}
	if !v.ipc.handles[h] && !v.ipc.interceptors[h] {
		return 0, errors.New(bus.ErrTextHandleNotFound)
	}
	return h, nil
}

// ipcUnsubscribe: astrid_ipc_unsubscribe(handle).
func (v *env) ipcUnsubscribe(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	h, err := v.ipcHandle(c, k, args[0])
	if err != nil {
		return nil, err
	}
	if v.ipc.interceptors[h] {
		return nil, errors.New(bus.ErrTextInterceptorHandle)
	}
	client, err := v.ipcClient()
	if err != nil {
		return nil, err
	}
	if _, err := client.IpcUnsubscribe(v.call.ctx, &pb.IpcHandle{Handle: h}); err != nil {
		return nil, v.hostError(err)
	}
	delete(v.ipc.handles, h)
	return nil, nil
}

// ipcPoll: astrid_ipc_poll(handle) -> envelope JSON, without waiting.
func (v *env) ipcPoll(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	h, err := v.ipcHandle(c, k, args[0])
	if err != nil {
		return nil, err
	}
	client, err := v.ipcClient()
	if err != nil {
		return nil, err
	}
	env, err := client.IpcPoll(v.call.ctx, &pb.IpcHandle{Handle: h})
	if err != nil {
		return nil, v.hostError(err)
	}
	return returnBytes(c, k, env.Json)
}

// ipcRecv: astrid_ipc_recv(handle, timeout_ms) -> envelope JSON, waiting up to the timeout
// (clamped to 60 s); the wait ends at the call's time limit and when the capsule unloads.
func (v *env) ipcRecv(c *wasmtime.Caller, k *kernel.Kernel, args []wasmtime.Val) ([]wasmtime.Val, error) {
	h, err := v.ipcHandle(c, k, args[0])
	if err != nil {
		return nil, err
	}
	tb, err := readLimited(c, k, uint64(args[1].I64()), maxHandleBytes, "Timeout exceeds maximum allowed length")
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(tb) {
		return nil, fmt.Errorf("Timeout is not valid UTF-8: invalid utf-8 sequence")
	}
	timeout, err := strconv.ParseUint(string(tb), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("Invalid timeout format: %v", err.(*strconv.NumError).Err)
	}
	// The pending publishes travel with the recv request: one round trip, not two.
	v.logs.flush()
	pending, err := v.ipc.takePending()
	if err != nil {
		return nil, err
	}
	client, err := v.host.get()
	if err != nil {
		return nil, err
	}
	env, err := client.IpcRecv(v.call.ctx, &pb.IpcRecvRequest{Handle: h, TimeoutMs: min(timeout, maxRecvTimeout), PublishFirst: pending})
	if err != nil {
		return nil, v.hostError(err)
	}
	return returnBytes(c, k, env.Json)
}

// getInterceptorHandles: astrid_get_interceptor_handles() -> JSON array of the runtime-owned
// subscriptions of the capsule's [[interceptor]]s.
func (v *env) getInterceptorHandles(c *wasmtime.Caller, k *kernel.Kernel, _ []wasmtime.Val) ([]wasmtime.Val, error) {
	return returnBytes(c, k, v.ipc.interceptJSON)
}

// signalReady: astrid_signal_ready() — a run-loop capsule is set up and ready for messages.
func (v *env) signalReady(*wasmtime.Caller, *kernel.Kernel, []wasmtime.Val) ([]wasmtime.Val, error) {
	client, err := v.ipcClient()
	if err != nil {
		return nil, err
	}
	if _, err := client.SignalReady(v.call.ctx, &pb.SignalReadyRequest{}); err != nil {
		return nil, v.hostError(err)
	}
	return nil, nil
}
