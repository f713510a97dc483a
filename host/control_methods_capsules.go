package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/astrid-go/astrid/host/control"
	"github.com/astrid-go/astrid/host/manifest"
	"github.com/astrid-go/astrid/shared/logtext"
)

// The control methods on capsules: live status, a call into a running capsule, load and unload
// (astrid-host status, call --running, load, unload).
const (
	// ControlStatus reports the host and its capsules: no params, result HostStatus.
	ControlStatus = "status"
	// ControlCall calls an export of a running capsule: params CallParams; it answers with a
	// stream of CallFrames (the output in pieces), ended by the call's error if it failed.
	ControlCall = "call"
	// ControlLoad loads development capsules: params LoadParams, result LoadReport.
	ControlLoad = "load"
	// ControlUnload unloads a capsule: params UnloadParams, result the same.
	ControlUnload = "unload"
)

// Limits of the capsule methods.
const (
	// MaxStatusTextBytes bounds each reason and last failure in a status result (1 KiB), so
	// that the status of hundreds of capsules fits a control frame.
	MaxStatusTextBytes = 1024
	// MaxExportNameBytes bounds the export name of a call --running: 1 KiB.
	MaxExportNameBytes = 1024
	// callChunkBytes is the most output bytes one CallFrame carries.
	callChunkBytes = 256 << 10
)

// HostStatus is the result of ControlStatus.
type HostStatus struct {
	// HostPid is the pid of the host process.
	HostPid int `json:"host_pid"`
	// Capsules are the loaded capsules, in load order.
	Capsules []CapsuleStatus `json:"capsules"`
}

// CapsuleStatus is one capsule in a HostStatus: its Status, and its version, where it was
// loaded from and whether its module is verified.
type CapsuleStatus struct {
	Status
	Version string `json:"version"`
	Dir     string `json:"dir"`
	// Source is "store" for an installed capsule (its module is checked against meta.json's
	// BLAKE3 hash at every load) and "development" for one loaded from a directory unverified.
	Source string `json:"source"`
}

// CallParams are the params of ControlCall. Input is at most MaxOperatorPayloadBytes;
// TimeoutMs, when positive, replaces the capsule's [limits] call_timeout for this call.
type CallParams struct {
	Capsule   string `json:"capsule"`
	Export    string `json:"export"`
	Input     []byte `json:"input,omitempty"`
	TimeoutMs int64  `json:"timeout_ms,omitempty"`
}

// CallFrame is one frame of a call's answer: a piece of the output, or, when the guest failed,
// its wasm backtrace and the stderr it wrote (sent before the stream ends with its message).
type CallFrame struct {
	Output    []byte `json:"output,omitempty"`
	Backtrace string `json:"backtrace,omitempty"`
	Stderr    string `json:"stderr,omitempty"`
}

// CheckCallParams checks a call --running before it is sent and when it arrives: a capsule and
// an export named (the export at most MaxExportNameBytes), the input at most
// MaxOperatorPayloadBytes, no negative timeout.
func CheckCallParams(p CallParams) error {
	switch {
	case p.Capsule == "":
		return errors.New("no capsule named")
	case p.Export == "" || len(p.Export) > MaxExportNameBytes:
		return fmt.Errorf("export name of %d bytes: want 1 to %d", len(p.Export), MaxExportNameBytes)
	case len(p.Input) > MaxOperatorPayloadBytes:
		return fmt.Errorf("input of %d bytes: a call into a running capsule takes at most %d bytes (512 KiB)", len(p.Input), MaxOperatorPayloadBytes)
	case p.TimeoutMs < 0:
		return fmt.Errorf("timeout of %d ms: must not be negative", p.TimeoutMs)
	}
	return nil
}

// LoadParams are the params of ControlLoad: an absolute path, as `run PATH` takes one (a
// capsule directory, or a directory of capsule directories).
type LoadParams struct {
	Dir string `json:"dir"`
}

// LoadReport is the result of ControlLoad: what became of each capsule found under the
// directory.
type LoadReport struct {
	Capsules []LoadedCapsule `json:"capsules"`
	// Skipped are the paths under the directory that were not loaded, and why.
	Skipped []string `json:"skipped,omitempty"`
}

// LoadedCapsule is one capsule of a LoadReport: its name (when its manifest could be read), its
// directory, its state after the load, and the error when it did not load.
type LoadedCapsule struct {
	Capsule string `json:"capsule,omitempty"`
	Dir     string `json:"dir"`
	State   string `json:"state,omitempty"`
	Error   string `json:"error,omitempty"`
}

// UnloadParams are the params of ControlUnload.
type UnloadParams struct {
	Capsule string `json:"capsule"`
}

// capsuleMethods are the control methods on capsules. Loads and unloads through the socket run
// one at a time, so that two cannot both find a name free.
func (h *Host) capsuleMethods(hs control.Handlers) {
	var changing sync.Mutex
	hs[ControlStatus] = func(context.Context, json.RawMessage) (any, error) { return h.hostStatus(), nil }
	hs[ControlCall] = func(_ context.Context, raw json.RawMessage) (any, error) {
		var p CallParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf(`%s: want params {"capsule": string, "export": string, "input": base64, "timeout_ms": number}: %v`, ControlCall, err)
		}
		if err := CheckCallParams(p); err != nil {
			return nil, err
		}
		inst, err := h.running(p.Capsule)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(inst.Exports(), p.Export) {
			return nil, fmt.Errorf("capsule %s has no export %q; it exports: %s", p.Capsule, logtext.Escape(p.Export), strings.Join(inst.Exports(), ", "))
		}
		return callStream(inst, p), nil
	}
	hs[ControlLoad] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p LoadParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf(`%s: want params {"dir": string}: %v`, ControlLoad, err)
		}
		changing.Lock()
		defer changing.Unlock()
		return h.loadDir(ctx, p.Dir)
	}
	hs[ControlUnload] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p UnloadParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf(`%s: want params {"capsule": string}: %v`, ControlUnload, err)
		}
		changing.Lock()
		defer changing.Unlock()
		if err := h.Unload(ctx, p.Capsule); err != nil {
			return nil, err
		}
		return p, nil
	}
}

// hostStatus is the status of the host and its capsules now.
func (h *Host) hostStatus() HostStatus {
	st := HostStatus{HostPid: os.Getpid(), Capsules: []CapsuleStatus{}}
	for _, inst := range h.Instances() {
		s := inst.Status()
		s.Reason, s.LastFailure = clip(s.Reason, MaxStatusTextBytes), clip(s.LastFailure, MaxStatusTextBytes)
		cs := CapsuleStatus{Status: s, Version: inst.manifest.Package.Version, Dir: inst.manifest.Dir, Source: "development"}
		if inst.opts.Installed != nil {
			cs.Source = "store"
		}
		st.Capsules = append(st.Capsules, cs)
	}
	return st
}

// running is the loaded instance of the capsule named id, or an error naming the loaded ones.
func (h *Host) running(id string) (*Instance, error) {
	insts := h.Instances()
	names := make([]string, 0, len(insts))
	for _, inst := range insts {
		if inst.ID() == id {
			return inst, nil
		}
		names = append(names, inst.ID())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no capsule %q is loaded in this host; none is", logtext.Escape(id))
	}
	return nil, fmt.Errorf("no capsule %q is loaded in this host; loaded: %s", logtext.Escape(id), strings.Join(names, ", "))
}

// callStream calls the export and sends its output in CallFrames; the stream ends with the
// call's error. The call ends early when the client leaves.
func callStream(inst *Instance, p CallParams) control.Stream {
	return func(ctx context.Context, send func(any) error) error {
		out, err := inst.Call(ctx, p.Export, p.Input, time.Duration(p.TimeoutMs)*time.Millisecond)
		if err != nil {
			var ge *GuestError
			if errors.As(err, &ge) && (ge.Backtrace != "" || ge.Stderr != "") {
				send(CallFrame{Backtrace: ge.Backtrace, Stderr: ge.Stderr})
			}
			return err
		}
		for len(out) > 0 {
			n := min(len(out), callChunkBytes)
			if err := send(CallFrame{Output: out[:n]}); err != nil {
				return err
			}
			out = out[n:]
		}
		return nil
	}
}

// loadDir loads the capsules under dir as `run dir` would (development capsules, in dependency
// order, run loops started), except one whose name is loaded already.
func (h *Host) loadDir(ctx context.Context, dir string) (LoadReport, error) {
	if !filepath.IsAbs(dir) {
		return LoadReport{}, fmt.Errorf("load: the directory %q is not an absolute path", dir)
	}
	found, skipped, err := DiscoverPaths([]string{dir})
	if err != nil {
		return LoadReport{}, fmt.Errorf("load: %w", err)
	}
	rep := LoadReport{Capsules: []LoadedCapsule{}, Skipped: skipped}
	loaded := map[string]bool{}
	for _, inst := range h.Instances() {
		loaded[inst.ID()] = true
	}
	var caps []Capsule
	var at []int // caps[k] is rep.Capsules[at[k]]
	for _, f := range found {
		m, _, err := manifest.Load(f.Dir)
		switch {
		case err != nil:
			rep.Capsules = append(rep.Capsules, LoadedCapsule{Dir: f.Dir, Error: "invalid manifest: " + err.Error()})
			continue
		case loaded[m.ID()]:
			rep.Capsules = append(rep.Capsules, LoadedCapsule{Capsule: m.ID(), Dir: f.Dir,
				Error: fmt.Sprintf("a capsule named %s is loaded already; unload it first ('astrid-host unload %s')", m.ID(), m.ID())})
			continue
		}
		loaded[m.ID()] = true
		at = append(at, len(rep.Capsules))
		rep.Capsules = append(rep.Capsules, LoadedCapsule{Capsule: m.ID(), Dir: f.Dir})
		caps = append(caps, Capsule{Manifest: m, Options: LoadOptions{RunLoop: true, Installed: f.Installed}})
	}
	if len(caps) > 0 {
		boot := h.boot(ctx, caps)
		for k, o := range boot.Outcomes {
			c := &rep.Capsules[at[k]]
			if o.Instance != nil {
				st, _ := o.Instance.State()
				c.State = st.String()
			}
			if o.Err != nil {
				c.Error = o.Err.Error()
			}
		}
	}
	return rep, nil
}
