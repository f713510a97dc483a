package process

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// cancelledResult is upstream's result of a spawn cancelled by the capsule's unload.
var cancelledResult = SpawnResult{Stdout: "", Stderr: "process cancelled", ExitCode: -1}

// Spawn runs a process to its end and returns its output (the start of each stream, as much as
// takes at most MaxCaptureBytes in the result's JSON) and how it ended. With TimeoutMS the tree is killed when the time is up
// (TimedOut). When ctx is cancelled or the Manager closes, the tree is killed and the result is
// upstream's cancelled result.
func (m *Manager) Spawn(ctx context.Context, principal string, req SpawnRequest) (SpawnResult, error) {
	const failText = "failed to spawn command"
	var timeout time.Duration
	if req.TimeoutMS != nil {
		ms := *req.TimeoutMS
		if ms < 1 || ms > MaxTimeoutMS {
			return SpawnResult{}, fmt.Errorf("invalid timeout_ms %d: it must be between 1 and %d", ms, MaxTimeoutMS)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	spec, err := m.prepare(req, failText)
	if err != nil {
		return SpawnResult{}, err
	}
	stdout := &capture{limit: MaxCaptureBytes}
	stderr := &capture{limit: MaxCaptureBytes}
	l := launch{spec: spec, stdout: stdout, stderr: stderr, readSize: captureReadSize, failText: failText, principal: principal}
	if req.Stdin != nil && *req.Stdin != "" {
		l.stdinPipe, l.feed = true, []byte(*req.Stdin)
	}
	if ctx.Err() != nil {
		return cancelledResult, nil
	}
	p, err := m.start(l)
	if errors.Is(err, errClosedWhileStarting) {
		return cancelledResult, nil
	}
	if err != nil {
		return SpawnResult{}, err
	}
	m.logSpawn("spawn", 0, principal, spec.Path, p)

	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	timedOut, cancelled := false, false
	select {
	case <-p.done:
	case <-expired:
		timedOut = !p.finished()
	case <-ctx.Done():
		cancelled = true
	case <-m.closing:
		cancelled = true
	}
	if timedOut || cancelled {
		if err := p.killTree(); err != nil {
			m.log.Warn("killing a spawned process", "pid", p.pid, "error", err)
		}
		<-p.done
	}
	if cancelled {
		return cancelledResult, nil
	}
	// Bounded as encoded: a control character takes six bytes in the result's JSON.
	out, outCut := lossyPrefix(stdout.buf, MaxCaptureBytes)
	errOut, errCut := lossyPrefix(stderr.buf, MaxCaptureBytes)
	stdout.buf, stderr.buf = nil, nil
	res := SpawnResult{
		Stdout:    out,
		Stderr:    errOut,
		ExitCode:  p.exit.Code,
		Truncated: stdout.truncated || stderr.truncated || outCut || errCut,
		TimedOut:  timedOut,
	}
	if p.exit.Signal != 0 {
		sig := int(p.exit.Signal)
		res.Signal = &sig
	}
	return res, nil
}

// logSpawn logs a started process with the sandbox layers it got.
func (m *Manager) logSpawn(kind string, id uint64, principal, path string, p *process) {
	if !m.log.IsDebug() {
		return
	}
	layers := make([]string, len(p.layers))
	for i, l := range p.layers {
		layers[i] = string(l)
	}
	m.log.Debug("process started", "kind", kind, "capsule", m.cfg.CapsuleID, "instance", m.cfg.Instance,
		"principal", principal, "id", id, "program", path, "pid", p.pid, "layers", layers,
		"policy", m.cfg.Sandbox.Policy().String())
}
