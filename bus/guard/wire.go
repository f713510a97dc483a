package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/astrid-go/astrid/shared"
	"github.com/astrid-go/astrid/shared/pb"
)

// Limits of the guest's handle and timeout arguments (upstream's).
const (
	// MaxHandleBytes is the longest subscription handle or recv timeout block a guest may pass:
	// 32 bytes of decimal digits.
	MaxHandleBytes = 32
	// MaxRecvTimeoutMs is the longest recv wait, 60 s; a guest's longer timeout is clamped to it.
	MaxRecvTimeoutMs = 60_000
)

// MaxArgBytes is the largest memory block a guest may pass as an argument of a host function:
// 10 MiB, upstream's MAX_GUEST_PAYLOAD_LEN.
const MaxArgBytes = 10 << 20

// argTooLarge is the refusal of an argument block of n bytes, in the words of upstream's
// get_safe_bytes.
func argTooLarge(n int) error { return shared.ArgTooLarge(n, MaxArgBytes) }

// ParseHandle reads the decimal subscription handle a guest passes to poll, recv or
// unsubscribe, with upstream's errors: at most MaxHandleBytes, UTF-8, a u64.
func ParseHandle(b []byte) (uint64, error) {
	return parseDecimal(b, "Subscription handle exceeds maximum allowed length", "Subscription handle is not valid UTF-8", "Invalid subscription handle format")
}

// ParseTimeout reads the decimal recv timeout in milliseconds a guest passes, with upstream's
// errors; ClampRecvTimeout then bounds it.
func ParseTimeout(b []byte) (uint64, error) {
	return parseDecimal(b, "Timeout exceeds maximum allowed length", "Timeout is not valid UTF-8", "Invalid timeout format")
}

// ClampRecvTimeout bounds a guest's recv timeout to MaxRecvTimeoutMs, as upstream does.
func ClampRecvTimeout(ms uint64) uint64 { return min(ms, MaxRecvTimeoutMs) }

func parseDecimal(b []byte, tooLong, notUTF8, badFormat string) (uint64, error) {
	if len(b) > MaxHandleBytes {
		return 0, errors.New(tooLong)
	}
	if !utf8.Valid(b) {
		return 0, errors.New(notUTF8 + ": invalid utf-8 sequence")
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", badFormat, err.(*strconv.NumError).Err)
	}
	return n, nil
}

// InterceptorHandle is one element of the JSON array astrid_get_interceptor_handles returns:
// a subscription the host made for one of the capsule's [[interceptor]]s. The host sends the
// array in the LoadRequest; the shim hands it to the guest as it is.
type InterceptorHandle struct {
	HandleID uint64 `json:"handle_id"`
	Action   string `json:"action"`
	Topic    string `json:"topic"`
}

// ConfigFromLoad is the Config of the capsule instance a LoadRequest loads: the shim's Guard is
// built from it. The host builds the same Config from the manifest the request was made from.
func ConfigFromLoad(req *pb.LoadRequest) (Config, error) {
	cfg := Config{
		CapsuleID:   req.CapsuleId,
		Publish:     req.IpcPublish,
		Subscribe:   req.IpcSubscribe,
		BytesPerSec: req.IpcBytesPerSec,
	}
	if len(req.InterceptorHandles) == 0 {
		return cfg, nil
	}
	var handles []InterceptorHandle
	if err := json.Unmarshal(req.InterceptorHandles, &handles); err != nil {
		return Config{}, fmt.Errorf("interceptor handles from the host: %w", err)
	}
	for _, h := range handles {
		cfg.Interceptors = append(cfg.Interceptors, h.HandleID)
	}
	return cfg, nil
}
