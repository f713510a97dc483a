package shim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"google.golang.org/grpc/status"

	"github.com/astrid-go/astrid/bus/guard"
	"github.com/astrid-go/astrid/shared/pb"
	"github.com/astrid-go/astrid/shim/internal/kernel"
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

// ipcState is the shim's side of the capsule's IPC: the guard that checks each guest call
// exactly as the host will (package bus/guard, built from the LoadRequest), and the publishes
// not yet sent.
type ipcState struct {
	guard         *guard.Guard
	interceptJSON []byte // what astrid_get_interceptor_handles returns

	host *hostConn

	sendMu  sync.Mutex // held while a batch is sent, so batches arrive in order
	mu      sync.Mutex // guards the fields below
	pending []*pb.IpcPublication
	bytes   int
	timer   *time.Timer
	sending bool // a full batch is being sent in the background
	// lost and lostWhy are the publishes background sends could not hand to the host and why
	// (the latest reason), not yet reported: the guest's next IPC call reports them once, and
	// its publishes go on being sent.
	lost    int
	lostWhy string
}

func newIPCState(req *pb.LoadRequest, host *hostConn) (*ipcState, error) {
	cfg, err := guard.ConfigFromLoad(req)
	if err != nil {
		return nil, err
	}
	s := &ipcState{guard: guard.New(cfg, nil), interceptJSON: req.InterceptorHandles, host: host}
	if len(s.interceptJSON) == 0 {
		s.interceptJSON = []byte("[]")
	}
	return s, nil
}

// publish checks one guest publish as the host will (guard.CheckPublish) and queues it.
func (s *ipcState) publish(topic string, payload []byte) error {
	if err := s.guard.CheckPublish(topic, payload); err != nil {
		return err
	}
	s.mu.Lock()
	s.pending = append(s.pending, &pb.IpcPublication{Topic: topic, Payload: payload})
	s.bytes += len(payload)
	full := len(s.pending) >= publishBatchMessages || s.bytes >= publishBatchBytes
	switch {
	case !full:
		if s.timer == nil {
			s.timer = time.AfterFunc(publishFlushDelay, func() { s.send(context.Background()) })
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
			s.send(context.Background()) // a failure is reported at the guest's next IPC call
			s.mu.Lock()
			s.sending = false
			s.mu.Unlock()
		}()
		return nil
	}
}

// flush sends the pending publishes for a guest's IPC call, and reports what the host did not
// take: of this batch, or of background sends since the last report (reported once; publishes
// after a failure are still sent, never dropped in the shim).
func (s *ipcState) flush(ctx context.Context) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	batch := s.take()
	err := s.sendBatch(ctx, batch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lost += len(batch)
		s.lostWhy = err.Error()
	}
	return s.report()
}

// send is flush for a background send: a failure waits for the guest's next IPC call.
func (s *ipcState) send(ctx context.Context) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	batch := s.take()
	if err := s.sendBatch(ctx, batch); err != nil {
		s.mu.Lock()
		s.lost += len(batch)
		s.lostWhy = err.Error()
		s.mu.Unlock()
	}
}

// take removes the pending publishes and stops the flush timer. Called with sendMu held.
func (s *ipcState) take() []*pb.IpcPublication {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch := s.pending
	s.pending, s.bytes = nil, 0
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	return batch
}

// sendBatch hands batch to the host in one request.
func (s *ipcState) sendBatch(ctx context.Context, batch []*pb.IpcPublication) error {
	if len(batch) == 0 {
		return nil
	}
	client, err := s.host.get()
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, publishRPCTimeout)
		_, err = client.IpcPublish(rctx, &pb.IpcPublishRequest{Messages: batch})
		cancel()
	}
	if err != nil {
		return errors.New(status.Convert(err).Message())
	}
	return nil
}

// report returns the publishes the host did not take since the last report, as the guest's
// error, and forgets them. Called with s.mu held.
func (s *ipcState) report() error {
	if s.lost == 0 {
		return nil
	}
	err := fmt.Errorf("the host did not take %d published message(s): %s", s.lost, s.lostWhy)
	s.lost, s.lostWhy = 0, ""
	return err
}

// takePending hands the pending publishes to the caller, which sends them with its own request
// (IpcRecv's publish_first). It first waits for a background send in flight, so the caller's
// batch cannot overtake an earlier one. When background sends failed since the last report it
// reports that instead and leaves the pending publishes to be sent (by the flush timer, or the
// guest's next IPC call).
func (s *ipcState) takePending() ([]*pb.IpcPublication, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if err := s.report(); err != nil {
		if len(s.pending) > 0 && s.timer == nil {
			s.timer = time.AfterFunc(publishFlushDelay, func() { s.send(context.Background()) })
		}
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Unlock()
	return s.take(), nil
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
	topic, err := readArg(c, k, uint64(args[0].I64()), "topic")
	if err != nil {
		return nil, err
	}
	payload, err := readArg(c, k, uint64(args[1].I64()), "payload")
	if err != nil {
		return nil, err
	}
	return nil, v.ipc.publish(string(topic), payload)
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
	client, err := v.ipcClient()
	if err != nil {
		return nil, err
	}
	resp, err := client.IpcSubscribe(v.call.ctx, &pb.IpcSubscribeRequest{Pattern: pattern})
	if err != nil {
		return nil, v.hostError(err)
	}
	if err := v.ipc.guard.AddSubscription(resp.Handle); err != nil {
		return nil, fmt.Errorf("the host's handle %d: %w", resp.Handle, err)
	}
	return returnBytes(c, k, []byte(strconv.FormatUint(resp.Handle, 10)))
}

// ipcClient flushes the capsule's log lines and pending publishes (so the host sees the guest's
// calls in order, and a long-running capsule's lines as it goes) and returns the host client.
func (v *env) ipcClient() (pb.HostServicesClient, error) {
	if err := v.flushBeforeHost(); err != nil {
		return nil, err
	}
	return v.host.get()
}

// flushBeforeHost sends the capsule's log lines and pending publishes before a request to the
// host, so the host sees the guest's calls in the order it made them (and the call may now wait:
// its log lines are out).
func (v *env) flushBeforeHost() error {
	v.logs.flush()
	return v.ipc.flush(v.call.ctx)
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
	client, err := v.ipcClient()
	if err != nil {
		return nil, err
	}
	if _, err := client.IpcUnsubscribe(v.call.ctx, &pb.IpcHandle{Handle: h}); err != nil {
		return nil, v.hostError(err)
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
	env, err := client.IpcRecv(v.call.ctx, &pb.IpcRecvRequest{Handle: h, TimeoutMs: guard.ClampRecvTimeout(timeout), PublishFirst: pending})
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
