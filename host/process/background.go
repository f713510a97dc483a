package process

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// background is a background process's entry in the Manager's table.
type background struct {
	id     uint64
	p      *process
	stdout *ring
	stderr *ring
	// retired (guarded by Manager.mu) says read_logs has reported the exit and the final
	// output: the entry no longer counts toward the limit.
	retired bool
}

// noProcess is the error for an id that does not exist for the caller.
func noProcess(id uint64) error { return fmt.Errorf("no background process with id %d", id) }

// SpawnBackground starts a process that keeps running after the call and returns its id. Its
// output goes to two rings of RingBytes that keep the newest bytes; its stdin stays open for
// WriteStdin (req.Stdin, if any, is written to it first).
func (m *Manager) SpawnBackground(ctx context.Context, principal string, req SpawnRequest) (SpawnBackgroundResult, error) {
	const failText = "failed to spawn background process"
	if req.TimeoutMS != nil {
		return SpawnBackgroundResult{}, errors.New("timeout_ms is not supported by spawn_background: use wait with timeout_ms, then kill")
	}
	spec, err := m.prepare(req, failText)
	if err != nil {
		return SpawnBackgroundResult{}, err
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return SpawnBackgroundResult{}, m.closedError()
	}
	if m.liveBackground()+m.reserved >= m.cfg.MaxBackground {
		m.mu.Unlock()
		return SpawnBackgroundResult{}, fmt.Errorf("background process limit reached (max %d)", m.cfg.MaxBackground)
	}
	m.reserved++ // a slot held across the start, so concurrent spawns cannot overshoot
	m.mu.Unlock()

	b := &background{stdout: newRing(RingBytes), stderr: newRing(RingBytes)}
	p, err := m.start(launch{spec: spec, stdout: b.stdout, stderr: b.stderr, readSize: ringReadSize,
		stdinPipe: true, failText: failText, principal: principal})
	m.mu.Lock()
	m.reserved--
	if errors.Is(err, errClosedWhileStarting) || (err == nil && m.closed) {
		err = m.closedError()
	}
	if err != nil {
		m.mu.Unlock()
		if p != nil {
			_ = p.killTree()
			<-p.done
		}
		return SpawnBackgroundResult{}, err
	}
	m.nextID++
	b.id, b.p = m.nextID, p
	m.table[b.id] = b
	m.mu.Unlock()
	m.logSpawn("background", b.id, principal, spec.Path, p)

	if req.Stdin != nil && *req.Stdin != "" {
		if _, err := p.stdin.write(ctx, []byte(*req.Stdin)); err != nil {
			m.remove(b)
			_ = p.killTree()
			<-p.done
			return SpawnBackgroundResult{}, fmt.Errorf("%s: writing stdin: %v", failText, err)
		}
	}
	return SpawnBackgroundResult{ID: b.id}, nil
}

// liveBackground counts the entries that count toward the limit. m.mu must be held.
func (m *Manager) liveBackground() int {
	n := 0
	for _, b := range m.table {
		if !b.retired {
			n++
		}
	}
	return n
}

// lookup finds the caller's background process: another principal's process does not exist
// for it.
func (m *Manager) lookup(principal string, id uint64) (*background, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, m.closedError()
	}
	b := m.table[id]
	if b == nil || b.p.principal != principal {
		return nil, noProcess(id)
	}
	return b, nil
}

// remove takes b out of the table.
func (m *Manager) remove(b *background) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.table[b.id] == b {
		delete(m.table, b.id)
	}
	m.retiredIDs = slices.DeleteFunc(m.retiredIDs, func(id uint64) bool { return id == b.id })
}

// retire marks b's end as reported and forgets the oldest retired entries beyond
// RetainedExited.
func (m *Manager) retire(b *background) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.retired || m.table[b.id] != b {
		return
	}
	b.retired = true
	m.retiredIDs = append(m.retiredIDs, b.id)
	for len(m.retiredIDs) > RetainedExited {
		delete(m.table, m.retiredIDs[0])
		m.retiredIDs = m.retiredIDs[1:]
	}
}

// ReadLogs drains the output collected since the last call and says whether the process is
// running and, once it is not, how it ended.
func (m *Manager) ReadLogs(principal string, id uint64) (LogsResult, error) {
	b, err := m.lookup(principal, id)
	if err != nil {
		return LogsResult{}, err
	}
	running := !b.p.finished() // before draining: once finished, the rings hold the very end
	res := LogsResult{
		Stdout:  lossyString(b.stdout.drain(running)),
		Stderr:  lossyString(b.stderr.drain(running)),
		Running: running,
	}
	if !running {
		res.ExitCode, res.Signal = exitFields(b.p.exit)
		m.retire(b)
	}
	return res, nil
}

// Kill kills the process's whole tree, waits until it is reaped, and returns its last output
// (drained after the kill, so nothing it wrote is lost). The id is then gone.
func (m *Manager) Kill(principal string, id uint64) (KillResult, error) {
	b, err := m.lookup(principal, id)
	if err != nil {
		return KillResult{}, err
	}
	m.remove(b)
	killed := !b.p.finished()
	if killed {
		if err := b.p.killTree(); err != nil {
			m.log.Warn("killing a background process", "id", id, "pid", b.p.pid, "error", err)
		}
	}
	<-b.p.done
	res := KillResult{
		Killed: killed,
		Stdout: lossyString(b.stdout.drain(false)),
		Stderr: lossyString(b.stderr.drain(false)),
	}
	res.ExitCode, res.Signal = exitFields(b.p.exit)
	return res, nil
}

// Wait waits until the process ends, req.TimeoutMS passes (the process is left running), or
// ctx is cancelled (an error).
func (m *Manager) Wait(ctx context.Context, principal string, req WaitRequest) (WaitResult, error) {
	if req.TimeoutMS != nil && *req.TimeoutMS > MaxTimeoutMS {
		return WaitResult{}, fmt.Errorf("invalid timeout_ms %d: it must be at most %d", *req.TimeoutMS, MaxTimeoutMS)
	}
	b, err := m.lookup(principal, req.ID)
	if err != nil {
		return WaitResult{}, err
	}
	var expired <-chan time.Time
	if req.TimeoutMS != nil {
		timer := time.NewTimer(time.Duration(*req.TimeoutMS) * time.Millisecond)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-b.p.done:
	case <-expired:
		if !b.p.finished() {
			return WaitResult{Running: true, TimedOut: true}, nil
		}
	case <-ctx.Done():
		return WaitResult{}, fmt.Errorf("wait for background process %d cancelled: %v", req.ID, context.Cause(ctx))
	}
	var res WaitResult
	res.ExitCode, res.Signal = exitFields(b.p.exit)
	return res, nil
}

// Signal sends a signal (by its ABI name) to the process's group.
func (m *Manager) Signal(principal string, req SignalRequest) (SignalResult, error) {
	b, err := m.lookup(principal, req.ID)
	if err != nil {
		return SignalResult{}, err
	}
	sig, err := parseSignal(req.Signal)
	if err != nil {
		return SignalResult{}, err
	}
	if err := b.p.signal(sig); err != nil {
		if errors.Is(err, errExited) || b.p.finished() {
			return SignalResult{}, fmt.Errorf("cannot signal background process %d: it has exited", req.ID)
		}
		return SignalResult{}, fmt.Errorf("cannot signal background process %d: %v", req.ID, err)
	}
	return SignalResult{OK: true}, nil
}

// WriteStdin writes req.Data to the process's stdin, then closes it if req.Close. It blocks until
// the process has taken the data into its pipe, the process ends, or ctx is cancelled.
func (m *Manager) WriteStdin(ctx context.Context, principal string, req WriteStdinRequest) (WriteStdinResult, error) {
	if len(req.Data) > MaxStdinWrite {
		return WriteStdinResult{}, fmt.Errorf("write_stdin data too large: %d bytes, at most %d a call", len(req.Data), MaxStdinWrite)
	}
	b, err := m.lookup(principal, req.ID)
	if err != nil {
		return WriteStdinResult{}, err
	}
	n, err := b.p.stdin.write(ctx, []byte(req.Data))
	if req.Close {
		b.p.stdin.close()
	}
	switch {
	case err == nil:
		return WriteStdinResult{Written: n}, nil
	case errors.Is(err, errStdinClosed):
		return WriteStdinResult{}, fmt.Errorf("cannot write to background process %d: its stdin is closed", req.ID)
	case errors.Is(err, errExited):
		return WriteStdinResult{}, fmt.Errorf("cannot write to background process %d: it has exited", req.ID)
	default:
		return WriteStdinResult{}, fmt.Errorf("writing to the stdin of background process %d failed after %d bytes: %v", req.ID, n, err)
	}
}
