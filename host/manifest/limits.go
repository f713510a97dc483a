package manifest

import (
	"fmt"
	"math"
	"time"
)

// Defaults for [limits] and [restart]. They match the fixed values of the
// upstream runtime (64 MiB of memory, 300 s per call, 10 MiB/s of IPC, 8
// background processes, 5 restarts with a 2 s backoff doubling to 120 s);
// upstream has no compile deadline, and 60 s is ours.
const (
	DefaultMemory         = 64 << 20
	DefaultCallTimeout    = 300 * time.Second
	DefaultCompileTimeout = 60 * time.Second
	DefaultIPCBytesPerSec = 10 << 20
	DefaultMaxProcesses   = 8
	DefaultProcessMemory  = 2 << 30  // ours: upstream does not limit a spawned process's memory
	DefaultKVBytes        = 64 << 20 // ours: upstream's KV store has no per-capsule quota
	DefaultRestartPolicy  = RestartOnFailure
	DefaultMaxAttempts    = 5
	DefaultBackoff        = 2 * time.Second
	DefaultMaxBackoff     = 120 * time.Second
)

// Bounds of [limits] and [restart] values.
const (
	minMemory         = 1 << 20
	maxMemory         = 4 << 30 // the 32-bit wasm address space
	maxCallTimeout    = 24 * time.Hour
	maxCompileTimeout = time.Hour
	maxMaxProcesses   = 1024
	minProcMemory     = 16 << 20
	maxProcMemory     = 1 << 40
	minBackoff        = time.Millisecond
	// maxKVBytes bounds a capsule's KV quota: 16 GiB. Every capsule's entries share one
	// database file that the host maps into memory.
	maxKVBytes = 16 << 30
)

// Limits are the resource limits of one capsule instance ([limits]).
type Limits struct {
	// Memory is the most bytes the capsule's Store holds: its linear memory, the kernel's
	// memories and its table together (the shim shares it out; see the README's limits);
	// [limits] memory.
	Memory         uint64
	CallTimeout    time.Duration // wall-clock limit of one export call, and of the start function and _initialize; [limits] call_timeout
	Fuel           uint64        // fuel per call, 0 = fuel metering off; [limits] fuel
	IPCBytesPerSec uint64        // bytes the capsule may publish per second; [limits] ipc_bytes_per_sec
	MaxProcesses   int           // concurrent background processes; [limits] max_processes
	ProcessMemory  uint64        // bytes of memory (swap included) of each spawned process tree, where cgroups allow; [limits] process_memory
	// CompileTimeout is the wall-clock limit of compiling the capsule's module; the host kills
	// the compiling shim when it passes and the load fails. [limits] compile_timeout.
	CompileTimeout time.Duration
	// KVBytes is the capsule's KV quota: the most bytes its keys and values may take together,
	// across every principal's namespace of the capsule. 0 gives it no KV storage.
	// [limits] kv_bytes.
	KVBytes uint64
}

// RestartPolicy says when a crashed capsule is restarted.
type RestartPolicy string

// The restart policies.
const (
	RestartOnFailure RestartPolicy = "on-failure" // restart after a crash, not after a clean exit
	RestartAlways    RestartPolicy = "always"     // restart whenever the capsule stops
	RestartNever     RestartPolicy = "never"      // never restart
)

// Restart is the restart policy of a capsule ([restart]): after a crash the
// supervisor waits Backoff, doubling it after each attempt up to MaxBackoff,
// and gives up after MaxAttempts attempts.
type Restart struct {
	Policy      RestartPolicy
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
}

// defaultLimits returns the limits of a capsule without [limits].
func defaultLimits() Limits {
	return Limits{
		Memory:         DefaultMemory,
		CallTimeout:    DefaultCallTimeout,
		CompileTimeout: DefaultCompileTimeout,
		IPCBytesPerSec: DefaultIPCBytesPerSec,
		MaxProcesses:   DefaultMaxProcesses,
		ProcessMemory:  DefaultProcessMemory,
		KVBytes:        DefaultKVBytes,
	}
}

// defaultRestart returns the restart policy of a capsule without [restart].
func defaultRestart() Restart {
	return Restart{
		Policy:      DefaultRestartPolicy,
		MaxAttempts: DefaultMaxAttempts,
		Backoff:     DefaultBackoff,
		MaxBackoff:  DefaultMaxBackoff,
	}
}

// limits decodes [limits] (t may be nil when the section is absent).
func (d *decoder) limits(t *table) Limits {
	l := defaultLimits()
	if t == nil {
		return l
	}
	d.sizeIn(t, "memory", minMemory, maxMemory, "at least 1MiB and at most 4GiB (default 64MiB)", &l.Memory)
	d.timeout(t, "call_timeout", maxCallTimeout, "24h", DefaultCallTimeout, &l.CallTimeout)
	d.timeout(t, "compile_timeout", maxCompileTimeout, "1h", DefaultCompileTimeout, &l.CompileTimeout)
	if n, ok := t.integer("fuel"); ok {
		if n <= 0 {
			d.errorf(t.at("fuel"), "must be a positive integer, got %d (remove the key to turn fuel metering off)", n)
		} else {
			l.Fuel = uint64(n)
		}
	}
	if v, ok := t.get("ipc_bytes_per_sec"); ok {
		if n, ok := d.size(t.at("ipc_bytes_per_sec"), v); ok {
			if n == 0 {
				d.errorf(t.at("ipc_bytes_per_sec"), "must be more than 0 bytes (default 10MiB)")
			} else {
				l.IPCBytesPerSec = n
			}
		}
	}
	if n, ok := t.integer("max_processes"); ok {
		if n < 0 || n > maxMaxProcesses {
			d.errorf(t.at("max_processes"), "%d is out of range: max_processes must be between 0 and %d (default %d)", n, maxMaxProcesses, DefaultMaxProcesses)
		} else {
			l.MaxProcesses = int(n)
		}
	}
	d.sizeIn(t, "process_memory", minProcMemory, maxProcMemory, "at least 16MiB and at most 1024GiB (default 2GiB)", &l.ProcessMemory)
	d.sizeIn(t, "kv_bytes", 0, maxKVBytes, "at most 16GiB (default 64MiB; 0 gives the capsule no KV storage)", &l.KVBytes)
	t.done(nil)
	return l
}

// sizeIn decodes the size at key, if present, into dst when it lies in [lo, hi]; otherwise it
// reports the value out of range with bounds, the valid range in words.
func (d *decoder) sizeIn(t *table, key string, lo, hi uint64, bounds string, dst *uint64) {
	v, ok := t.get(key)
	if !ok {
		return
	}
	n, ok := d.size(t.at(key), v)
	switch {
	case !ok:
	case n < lo || n > hi:
		d.errorf(t.at(key), "%s is out of range: %s must be %s", formatSize(n), key, bounds)
	default:
		*dst = n
	}
}

// restart decodes [restart] (t may be nil when the section is absent).
func (d *decoder) restart(t *table) Restart {
	r := defaultRestart()
	if t == nil {
		return r
	}
	if s, ok := t.str("policy"); ok {
		switch p := RestartPolicy(s); p {
		case RestartOnFailure, RestartAlways, RestartNever:
			r.Policy = p
		default:
			d.errorf(t.at("policy"), "%q is not a restart policy; want \"on-failure\" (the default), \"always\" or \"never\"", s)
		}
	}
	if n, ok := t.integer("max_attempts"); ok {
		if n < 0 || n > math.MaxInt32 {
			d.errorf(t.at("max_attempts"), "%d is out of range: max_attempts must be 0 or more (default %d)", n, DefaultMaxAttempts)
		} else {
			r.MaxAttempts = int(n)
		}
	}
	backoffSet := false
	for _, k := range []string{"backoff", "max_backoff"} {
		v, ok := t.get(k)
		if !ok {
			continue
		}
		dur, ok := d.duration(t.at(k), v)
		if !ok {
			continue
		}
		if dur < minBackoff {
			d.errorf(t.at(k), "%s is too short: %s must be at least 1ms", dur, k)
			continue
		}
		if k == "backoff" {
			r.Backoff, backoffSet = dur, true
		} else {
			r.MaxBackoff = dur
			if r.MaxBackoff < r.Backoff {
				d.errorf(t.at(k), "%s is less than backoff %s: max_backoff must be at least backoff", r.MaxBackoff, r.Backoff)
			}
		}
	}
	if backoffSet && !t.has("max_backoff") && r.Backoff > r.MaxBackoff {
		d.errorf(t.at("backoff"), "%s is more than the default max_backoff %s: lower it or set max_backoff too", r.Backoff, r.MaxBackoff)
	}
	t.done(nil)
	return r
}

// size decodes a size: a non-negative TOML integer (bytes) or a string
// that ParseSize accepts.
func (d *decoder) size(p keyPath, v any) (uint64, bool) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			d.errorf(p, "must not be negative, got %d", v)
			return 0, false
		}
		return uint64(v), true
	case string:
		n, err := ParseSize(v)
		if err != nil {
			d.errorf(p, "%v", err)
			return 0, false
		}
		return n, true
	default:
		d.errorf(p, "must be a size: an integer number of bytes or a string of %s; got %s", sizeForms, typeName(v))
		return 0, false
	}
}

// timeout decodes the duration at key of t into *dst: more than 0 and at most max (written
// maxText in the error, which names def as the default).
func (d *decoder) timeout(t *table, key string, max time.Duration, maxText string, def time.Duration, dst *time.Duration) {
	v, ok := t.get(key)
	if !ok {
		return
	}
	dur, ok := d.duration(t.at(key), v)
	if !ok {
		return
	}
	if dur <= 0 || dur > max {
		d.errorf(t.at(key), "%s is out of range: %s must be more than 0 and at most %s (default %s)", dur, key, maxText, def)
		return
	}
	*dst = dur
}

// duration decodes a Go duration string such as "30s" or "100ms".
func (d *decoder) duration(p keyPath, v any) (time.Duration, bool) {
	s, ok := v.(string)
	if !ok {
		d.errorf(p, "must be a duration string such as \"30s\", \"100ms\" or \"2m\", got %s", typeName(v))
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(p, "invalid duration %q: want a number with a unit (ns, us, ms, s, m, h) such as \"30s\", \"100ms\" or \"1m30s\"", s)
		return 0, false
	}
	return dur, true
}

// formatSize writes n bytes with the largest binary unit that divides it.
func formatSize(n uint64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
