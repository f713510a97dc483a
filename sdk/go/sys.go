package astrid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// SignalReady tells the host that this run-loop capsule has set itself up (subscribed to what it
// serves) and is ready for messages. A run-loop capsule is one that exports run, which the host
// starts in the background once the capsule is loaded; `astrid-host run` waits up to 5 s for
// each such capsule to signal ready before it announces that the capsules are loaded and
// publishes its --publish messages, so nothing published then is missed. Other capsules need not
// call it.
func SignalReady() { hostSignalReady() }

// GetConfig returns the capsule's configuration value for key through upstream's
// astrid_get_config: the manifest's [env] value, overridden by the operator (astrid-host
// --config), with strings as they are and other JSON values serialised; "" when key is not
// set. It reads the same values as Config (the Extism kernel's config_get), which tells a
// missing key from a set one; GetConfig is there for code ported from astrid-sdk's env::var.
func GetConfig(key string) string {
	return string(callHost(hostGetConfig, []byte(key)))
}

// CallerContext is who the capsule is working for in the current call (astrid_get_caller).
type CallerContext struct {
	// Principal is the principal (the user) of the message being handled; empty when the
	// message had none.
	Principal string `json:"principal"`
	// SourceID is the id of the capsule instance that published the message (a UUID; the nil
	// UUID for the host's own messages).
	SourceID string `json:"source_id"`
	// Timestamp is when the message was published.
	Timestamp time.Time `json:"timestamp"`
}

// Caller returns the caller context of the current call and true: inside an interceptor
// invocation, the principal, publisher and time of the message that triggered it. Outside one
// (a plain export call, a run loop) there is none, and Caller returns false.
func Caller() (CallerContext, bool, error) {
	return decodeCaller(callHost0(hostGetCaller))
}

// decodeCaller decodes astrid_get_caller's JSON: {} (or nothing) when there is no caller.
func decodeCaller(b []byte) (CallerContext, bool, error) {
	var raw struct {
		Principal *string `json:"principal"`
		SourceID  *string `json:"source_id"`
		Timestamp *string `json:"timestamp"`
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return CallerContext{}, false, nil
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return CallerContext{}, false, fmt.Errorf("astrid: astrid_get_caller: decoding %.200q: %w", b, err)
	}
	if raw.Principal == nil && raw.SourceID == nil && raw.Timestamp == nil {
		return CallerContext{}, false, nil
	}
	var c CallerContext
	if raw.Principal != nil {
		c.Principal = *raw.Principal
	}
	if raw.SourceID != nil {
		c.SourceID = *raw.SourceID
	}
	if raw.Timestamp != nil && *raw.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, *raw.Timestamp)
		if err != nil {
			return CallerContext{}, false, fmt.Errorf("astrid: astrid_get_caller: timestamp %.60q is not RFC 3339: %w", *raw.Timestamp, err)
		}
		c.Timestamp = t
	}
	return c, true, nil
}

// ClockMS returns the host's wall-clock time in milliseconds since the Unix epoch
// (astrid_clock_ms). A capsule's own time.Now reads WASI's clock, which the host provides too;
// ClockMS is there for code ported from astrid-sdk.
func ClockMS() (uint64, error) {
	return parseClockMS(callHost0(hostClockMS))
}

// Now returns ClockMS as a time.Time.
func Now() (time.Time, error) {
	ms, err := ClockMS()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(ms)), nil
}

// MaxLogMessageBytes is the longest message AstridLog sends: 64 KiB (the host traps the call
// on a longer one, as upstream).
const MaxLogMessageBytes = 64 << 10

// AstridLog writes msg as a log line of the capsule through upstream's astrid_log, at level,
// one of upstream's words ("trace", "debug", "info", "warn" or "warning", "error" or "err",
// any case; anything else is info). Unlike Log, which goes through the Extism kernel and skips
// lines below CurrentLogLevel in the capsule, every line reaches the host, which applies the
// level there. AstridLog returns an error, without calling the host, for a message over
// MaxLogMessageBytes or a level over 64 bytes.
func AstridLog(level, msg string) error {
	if err := checkLen("AstridLog", "level", len(level), 64); err != nil {
		return err
	}
	if err := checkLen("AstridLog", "message", len(msg), MaxLogMessageBytes); err != nil {
		return err
	}
	l := AllocateString(level)
	m := AllocateString(msg)
	hostLog(l.handle, m.handle)
	m.Free()
	l.Free()
	return nil
}

// callHost0 calls the argument-less host function fn and returns its result block's bytes.
func callHost0(fn func() uint64) []byte {
	r := FindMemory(fn())
	b := r.Bytes()
	r.Free()
	return b
}
