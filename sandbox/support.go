package sandbox

import (
	"fmt"
	"maps"
	"strings"
)

// Support is what this machine offers, layer by layer: Probe finds it once at start-up, and every
// Sandbox built on it applies what is there (and, under policy Required, refuses what is not).
// A Support is immutable once probed; it is safe to share between goroutines.
type Support struct {
	layers map[Layer]layerStatus
	// landlockABI is the kernel's landlock ABI version (0 when landlock is unavailable).
	landlockABI int
	// cgroup is where per-process cgroups are created when LayerCgroup is available.
	cgroup *cgroupRoot
	// swept is what the probe's sweep of dead hosts' cgroups did (see sweepOnce).
	swept cgroupSweep
}

// layerStatus is one layer's probe result.
type layerStatus struct {
	on     bool
	detail string // what is there, e.g. "ABI 7"
	why    string // why it is missing, when it is
}

// allLayers are the layers in the order the helper applies them, which is also the order of
// reports and of Cmd.Layers.
var allLayers = []Layer{
	LayerCgroup, LayerUserNS, LayerPIDNS, LayerNetNS, LayerIPCNS, LayerUTSNS, LayerMountNS,
	LayerRlimits, LayerLandlock, LayerSeccomp,
}

// Layers returns every layer, in the order the helper applies them.
func Layers() []Layer { return append([]Layer(nil), allLayers...) }

// protects says, for reports, what each layer protects against.
var protects = map[Layer]string{
	LayerCgroup:   "caps the tree's pids and memory (fork bombs, memory exhaustion)",
	LayerUserNS:   "root inside is nobody special outside; lets an unprivileged host make the other namespaces",
	LayerPIDNS:    "host processes are invisible and unsignalable; the tree dies with its init, setsid or not",
	LayerNetNS:    "no network at all: no host services, no loopback, no internet",
	LayerIPCNS:    "no System V IPC or POSIX message queues shared with the host",
	LayerUTSNS:    "hostname changes stay inside",
	LayerMountNS:  "private /proc, /tmp and /dev/shm, the host filesystem read-only (no chmod/chown/xattr), /run hidden",
	LayerRlimits:  "bounds open files and file size; no core dumps",
	LayerLandlock: "filesystem allow-list (system dirs read-only, workspace read-write), no TCP, no signals out",
	LayerSeccomp:  "no ptrace, mount, new namespaces, bpf, keyrings, kernel modules, perf, userfaultfd",
}

// Available reports whether the machine offers layer l.
func (s *Support) Available(l Layer) bool {
	return s != nil && s.layers[l].on
}

// Reason says why layer l is unavailable ("" when it is available). A layer that was never
// probed is reported as such.
func (s *Support) Reason(l Layer) string {
	if s == nil {
		return "the sandbox was not probed"
	}
	st, ok := s.layers[l]
	if !ok {
		return fmt.Sprintf("layer %q was not probed", string(l))
	}
	if st.on {
		return ""
	}
	return st.why
}

// Detail says what the machine offers for layer l when it is available, e.g. "ABI 7" for
// landlock or "v1 pids+memory" for cgroups.
func (s *Support) Detail(l Layer) string {
	if s == nil {
		return ""
	}
	return s.layers[l].detail
}

// LandlockABI is the kernel's landlock ABI version, 0 when landlock is unavailable.
func (s *Support) LandlockABI() int {
	if s == nil {
		return 0
	}
	return s.landlockABI
}

// Without returns a copy of s in which layer l is unavailable for the reason why: for a host
// flag that turns one layer off, and for tests of policy Required on a machine that has it all.
func (s *Support) Without(l Layer, why string) *Support {
	c := &Support{layers: map[Layer]layerStatus{}}
	if s != nil {
		c.layers = maps.Clone(s.layers)
		c.landlockABI, c.cgroup, c.swept = s.landlockABI, s.cgroup, s.swept
	}
	c.layers[l] = layerStatus{why: why}
	if l == LayerLandlock {
		c.landlockABI = 0
	}
	if l == LayerCgroup {
		c.cgroup = nil
	}
	return c
}

// Report is a human report of every layer, one line each: its name, on or off, what is there or
// why it is missing, and what it protects against; the cgroup line also says what the probe's
// sweep of dead hosts' cgroups did, if anything. astrid-host doctor prints it.
func (s *Support) Report() string {
	var b strings.Builder
	for _, l := range allLayers {
		state, text := "off", s.Reason(l)
		if s.Available(l) {
			state, text = "on", s.Detail(l)
		}
		if note := s.sweepNote(); l == LayerCgroup && note != "" {
			text += " (" + note + ")"
		}
		fmt.Fprintf(&b, "%-8s %-3s  %s — %s\n", l, state, text, protects[l])
	}
	return b.String()
}

// Missing lists the layers this machine does not offer, in the order the helper applies them.
func (s *Support) Missing() []Layer {
	var out []Layer
	for _, l := range allLayers {
		if !s.Available(l) {
			out = append(out, l)
		}
	}
	return out
}

// CheckPolicy says whether policy p can start processes here: under Required, an error naming
// every missing layer it cannot do without (namespaces and landlock), why, and PolicyFlag's
// value that relaxes it. BestEffort and Off can always run.
func (s *Support) CheckPolicy(p Policy) error {
	if p != Required {
		return nil
	}
	return refusal(s, s.Missing(), nil)
}

// Summary is a one-line account of layers for logs, e.g. "sandbox: cgroup=off userns=on pidns=on
// netns=on ipcns=on utsns=on mountns=on rlimits=on landlock=v7 seccomp=on". Given layers (a
// process's Cmd.Layers), those are on and every other is off; given none, it is what the machine
// offers, followed by what the probe's sweep of dead hosts' cgroups did if it did anything
// ("; removed 12 leftover cgroups of dead hosts").
func (s *Support) Summary(layers ...Layer) string {
	note := ""
	if len(layers) == 0 {
		note = s.sweepNote()
		for _, l := range allLayers {
			if s.Available(l) {
				layers = append(layers, l)
			}
		}
	}
	got := map[Layer]bool{}
	for _, l := range layers {
		got[l] = true
	}
	parts := []string{"sandbox:"}
	for _, l := range allLayers {
		v := "off"
		if got[l] {
			v = "on"
			if l == LayerLandlock && s.LandlockABI() > 0 {
				v = fmt.Sprintf("v%d", s.LandlockABI())
			}
		}
		parts = append(parts, string(l)+"="+v)
	}
	if note != "" {
		return strings.Join(parts, " ") + "; " + note
	}
	return strings.Join(parts, " ")
}

// sweepNote is what the probe's sweep of dead hosts' cgroups did, "" if nothing.
func (s *Support) sweepNote() string {
	if s == nil {
		return ""
	}
	return s.swept.String()
}
