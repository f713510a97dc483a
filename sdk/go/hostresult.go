package astrid

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Upstream's HostResult: the few Astrid host functions whose failures a capsule may handle
// (astrid_fs_exists, astrid_fs_readdir, astrid_fs_stat, astrid_read_file, astrid_kv_get,
// astrid_kv_list_keys, astrid_kv_clear_prefix) return a block whose first byte is a status:
// hostResultOK followed by the result, or hostResultErr followed by the error's UTF-8 text.
// The others trap the export call when they fail.
const (
	hostResultOK  byte = 0x00
	hostResultErr byte = 0x01
)

// HostError is a failure a host function reported without trapping the call: the host's
// message for one of the functions that return upstream's HostResult (the KV reads, ReadFile,
// ReadDir, Stat, FileExists), or the "error" of an identity function's answer (a capability not
// declared, an invalid field). The capsule may handle it, as it would an os.PathError.
type HostError struct {
	// Func is the host function that failed, such as "astrid_read_file".
	Func string
	// Message is the host's text, as the host wrote it (for instance
	// "kv_get failed: ..." or a path refusal).
	Message string
}

// Error returns "astrid: FUNC: MESSAGE".
func (e *HostError) Error() string { return "astrid: " + e.Func + ": " + e.Message }

// decodeHostResult splits the HostResult block b that host function fn returned into its
// result, or a *HostError for the host's error. A block that is neither (empty, or another
// status byte) can only come from a host that does not follow the ABI, and is an error naming
// what arrived.
func decodeHostResult(fn string, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("astrid: %s: the host returned an empty result; a HostResult starts with 0x00 (ok) or 0x01 (error)", fn)
	}
	switch b[0] {
	case hostResultOK:
		return b[1:], nil
	case hostResultErr:
		return nil, &HostError{Func: fn, Message: string(b[1:])}
	}
	return nil, fmt.Errorf("astrid: %s: the host's result starts with status byte 0x%02x, not 0x00 (ok) or 0x01 (error)", fn, b[0])
}

// decodeJSONResult decodes the HostResult b of fn and unmarshals its result into v.
func decodeJSONResult(fn string, b []byte, v any) error {
	r, err := decodeHostResult(fn, b)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r, v); err != nil {
		return fmt.Errorf("astrid: %s: decoding the host's result %.200q: %w", fn, r, err)
	}
	return nil
}

// decodeExists decodes astrid_fs_exists's HostResult: "true" when the path exists, empty when
// it does not.
func decodeExists(b []byte) (bool, error) {
	r, err := decodeHostResult("astrid_fs_exists", b)
	if err != nil {
		return false, err
	}
	switch string(r) {
	case "true":
		return true, nil
	case "", "false":
		return false, nil
	}
	return false, fmt.Errorf("astrid: astrid_fs_exists: the host returned %.200q, not \"true\" or nothing", r)
}

// FileInfo describes a file or directory, as Stat reports it (upstream's
// {"size","isDir","mtime"}).
type FileInfo struct {
	// Size is the length in bytes of a file (for a directory, what the
	// host's file system reports).
	Size uint64 `json:"size"`
	// IsDir reports whether the path is a directory.
	IsDir bool `json:"isDir"`
	// Mtime is the last modification time, in whole seconds since the Unix
	// epoch (0 when the host could not tell).
	Mtime uint64 `json:"mtime"`
}

// ModTime returns Mtime as a time.Time (the zero Time when Mtime is 0).
func (fi FileInfo) ModTime() time.Time {
	if fi.Mtime == 0 {
		return time.Time{}
	}
	return time.Unix(int64(fi.Mtime), 0)
}

// decodeStat decodes astrid_fs_stat's HostResult.
func decodeStat(b []byte) (FileInfo, error) {
	var fi FileInfo
	err := decodeJSONResult("astrid_fs_stat", b, &fi)
	return fi, err
}

// decodeNames decodes the HostResult of fn whose result is a JSON array of strings
// (astrid_fs_readdir's names, astrid_kv_list_keys's keys); never nil on success.
func decodeNames(fn string, b []byte) ([]string, error) {
	var names []string
	if err := decodeJSONResult(fn, b, &names); err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// decodeCount decodes astrid_kv_clear_prefix's HostResult, a JSON number.
func decodeCount(b []byte) (uint64, error) {
	var n uint64
	err := decodeJSONResult("astrid_kv_clear_prefix", b, &n)
	return n, err
}

// parseClockMS parses astrid_clock_ms's result: milliseconds since the Unix epoch in decimal
// ASCII.
func parseClockMS(b []byte) (uint64, error) {
	s := strings.TrimSpace(string(b))
	ms, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("astrid: astrid_clock_ms: the host returned %.40q, not a decimal number of milliseconds", b)
	}
	return ms, nil
}
