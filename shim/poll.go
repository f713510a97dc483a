package shim

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// WASI poll_oneoff layout (wasi_snapshot_preview1).
const (
	subscriptionSize = 48
	eventSize        = 32

	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	clockRealtime  = 0
	clockMonotonic = 1

	subscriptionClockAbstime = 1

	wasiErrnoInval  = 28
	wasiErrnoNotsup = 58

	// maxSubscriptions bounds one poll_oneoff call; real guests pass a handful.
	maxSubscriptions = 4096
)

// interruption returns why ctx ended (errCallTimeout or errUnloading), or nil while it runs.
func interruption(ctx context.Context) error {
	if ctx == nil || ctx.Err() == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return ctx.Err()
}

// definePollOneoff shadows WASI's poll_oneoff, which is how guests sleep (Go's time.Sleep, Rust's
// thread::sleep). wasmtime's own version blocks in a host call that epoch interruption cannot
// reach; this one waits on the call's context, so a sleeping guest ends at its time limit and at
// once when the capsule unloads.
//
// With no preopened files a guest has only stdin (always at end of file), stdout and stderr
// (always writable), so fd subscriptions are ready at once; other fds get EBADF.
func (v *env) definePollOneoff(linker *wasmtime.Linker) error {
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	return linker.FuncNew("wasi_snapshot_preview1", "poll_oneoff", ty,
		func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			errno, err := v.pollOneoff(c, uint32(args[0].I32()), uint32(args[1].I32()), uint32(args[2].I32()), uint32(args[3].I32()))
			if err != nil {
				return nil, wasmtime.NewTrap("poll_oneoff: " + err.Error())
			}
			return []wasmtime.Val{wasmtime.ValI32(errno)}, nil
		})
}

type subscription struct {
	userdata uint64
	kind     uint8
	fd       uint32
	deadline time.Time // clock subscriptions
	errno    uint16    // clock subscriptions this host cannot time
}

func (v *env) pollOneoff(c *wasmtime.Caller, in, out, n, neventsPtr uint32) (int32, error) {
	ext := c.GetExport("memory")
	if ext == nil || ext.Memory() == nil {
		return wasiErrnoFault, nil
	}
	if n == 0 || n > maxSubscriptions {
		return wasiErrnoInval, nil
	}
	mem := ext.Memory().UnsafeData(c)
	if uint64(in)+uint64(n)*subscriptionSize > uint64(len(mem)) || uint64(out)+uint64(n)*eventSize > uint64(len(mem)) ||
		uint64(neventsPtr)+4 > uint64(len(mem)) {
		return wasiErrnoFault, nil
	}
	now := time.Now()
	subs := make([]subscription, n)
	var ready []subscription
	var earliest time.Time
	for i := range subs {
		b := mem[uint64(in)+uint64(i)*subscriptionSize:]
		s := subscription{userdata: binary.LittleEndian.Uint64(b), kind: b[8]}
		switch s.kind {
		case eventClock:
			id, timeout, flags := binary.LittleEndian.Uint32(b[16:]), binary.LittleEndian.Uint64(b[24:]), binary.LittleEndian.Uint16(b[40:])
			switch {
			case flags&subscriptionClockAbstime == 0 && (id == clockRealtime || id == clockMonotonic):
				s.deadline = now.Add(time.Duration(min(timeout, uint64(1<<62))))
			case id == clockRealtime:
				s.deadline = time.Unix(0, int64(min(timeout, uint64(1<<62))))
			default:
				// An absolute deadline on wasmtime's monotonic clock, or a CPU-time clock: this
				// host cannot relate them to a wait, so it reports them unsupported at once.
				s.errno = wasiErrnoNotsup
				ready = append(ready, s)
				continue
			}
			if earliest.IsZero() || s.deadline.Before(earliest) {
				earliest = s.deadline
			}
		case eventFdRead, eventFdWrite:
			s.fd = binary.LittleEndian.Uint32(b[16:])
			if !(s.kind == eventFdRead && s.fd == 0) && !(s.kind == eventFdWrite && (s.fd == 1 || s.fd == 2)) {
				s.errno = wasiErrnoBadf
			}
			ready = append(ready, s)
		default:
			return wasiErrnoInval, nil
		}
		subs[i] = s
	}
	if len(ready) == 0 {
		if wait := time.Until(earliest); wait > 0 {
			// A guest that sleeps must not hold its log lines and messages back meanwhile.
			v.logs.flush()
			if v.ipc != nil {
				if err := v.ipc.flush(); err != nil {
					return 0, err
				}
			}
		}
		if wait := time.Until(earliest); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-v.call.ctx.Done():
				t.Stop()
				return 0, interruption(v.call.ctx)
			}
		}
		now = time.Now()
		for _, s := range subs {
			if s.kind == eventClock && !s.deadline.IsZero() && !s.deadline.After(now) {
				ready = append(ready, s)
			}
		}
	}
	// Waiting did not touch the guest's memory, but re-fetch it as the rules for host calls say.
	mem = ext.Memory().UnsafeData(c)
	for i, s := range ready {
		e := mem[uint64(out)+uint64(i)*eventSize:][:eventSize]
		clear(e)
		binary.LittleEndian.PutUint64(e[0:], s.userdata)
		binary.LittleEndian.PutUint16(e[8:], s.errno)
		e[10] = s.kind
	}
	binary.LittleEndian.PutUint32(mem[neventsPtr:], uint32(len(ready)))
	return wasiErrnoSuccess, nil
}
