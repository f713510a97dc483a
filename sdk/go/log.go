package astrid

import (
	"fmt"
	"strconv"
)

// LogLevel is the severity of a log line, and the threshold below which the
// host discards lines. The values are the ones get_log_level returns.
type LogLevel int32

// The log levels, from the most verbose to the most severe, and LogOff, the
// threshold of a capsule whose logging is turned off.
const (
	LogTrace LogLevel = 0
	LogDebug LogLevel = 1
	LogInfo  LogLevel = 2
	LogWarn  LogLevel = 3
	LogError LogLevel = 4
	LogOff   LogLevel = 5
)

// String returns the level's lower-case name ("trace" … "error", "off"), as
// astrid-host's --log-level flag spells it.
func (l LogLevel) String() string {
	switch l {
	case LogTrace:
		return "trace"
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	case LogOff:
		return "off"
	}
	return "LogLevel(" + strconv.Itoa(int(l)) + ")"
}

// CurrentLogLevel returns the capsule's log level: lines below it are
// discarded by the host, and LogOff means that every line is. The host sets
// it (astrid-host --log-level); the capsule cannot change it.
func CurrentLogLevel() LogLevel {
	l := LogLevel(kernelGetLogLevel())
	switch {
	case l < LogTrace:
		return LogTrace
	case l > LogOff:
		return LogOff
	}
	return l
}

// Log writes msg as a log line of the capsule at level. Lines below the
// current log level are skipped without reaching the host, as are empty
// messages and levels other than LogTrace … LogError.
//
// The line goes to the host's log, attributed to the capsule, like what the
// capsule writes to stdout or stderr, but with a level of its own. The host
// cuts lines longer than 64 KiB.
func Log(level LogLevel, msg string) {
	if msg != "" && logEnabled(level) {
		logWrite(level, msg)
	}
}

// Logf is Log with the message formatted by fmt.Sprintf(format, args...).
// The message is formatted only if the line will be written.
func Logf(level LogLevel, format string, args ...any) {
	if !logEnabled(level) {
		return
	}
	if msg := fmt.Sprintf(format, args...); msg != "" {
		logWrite(level, msg)
	}
}

// logWrite hands a non-empty msg to the host's log function for level.
func logWrite(level LogLevel, msg string) {
	m := AllocateString(msg)
	switch level {
	case LogTrace:
		kernelLogTrace(m.handle)
	case LogDebug:
		kernelLogDebug(m.handle)
	case LogInfo:
		kernelLogInfo(m.handle)
	case LogWarn:
		kernelLogWarn(m.handle)
	case LogError:
		kernelLogError(m.handle)
	}
	m.Free()
}

// logEnabled reports whether a line at level is valid and at or above the
// current log level. It asks the host each time: the call is cheap, and the
// level is then right however the capsule is called.
func logEnabled(level LogLevel) bool {
	return level >= LogTrace && level <= LogError && level >= CurrentLogLevel()
}
