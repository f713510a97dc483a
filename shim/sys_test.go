package shim

import (
	"context"
	"testing"
	"time"

	"github.com/astrid-go/astrid/shared/pb"
)

// TestLogLevelOf: upstream's level words, in any case; anything else is info.
func TestLogLevelOf(t *testing.T) {
	for _, tc := range []struct {
		word string
		want pb.LogEntry_Level
	}{
		{"trace", pb.LogEntry_TRACE}, {"TRACE", pb.LogEntry_TRACE},
		{"debug", pb.LogEntry_DEBUG}, {"dEbUg", pb.LogEntry_DEBUG},
		{"info", pb.LogEntry_INFO}, {"INFO", pb.LogEntry_INFO},
		{"warn", pb.LogEntry_WARN}, {"Warning", pb.LogEntry_WARN},
		{"error", pb.LogEntry_ERROR}, {"ERR", pb.LogEntry_ERROR},
		{"", pb.LogEntry_INFO}, {"fatal", pb.LogEntry_INFO}, {" warn", pb.LogEntry_INFO},
		{"warn\x00", pb.LogEntry_INFO}, {"\xff\xfe", pb.LogEntry_INFO}, {"errors", pb.LogEntry_INFO},
	} {
		t.Run(tc.word, func(t *testing.T) {
			if got := logLevelOf([]byte(tc.word)); got != tc.want {
				t.Errorf("logLevelOf(%q) = %v, want %v", tc.word, got, tc.want)
			}
		})
	}
}

// callerWAT returns astrid_get_caller's block as its output.
const callerWAT = `(module
  (import "extism:host/user" "astrid_get_caller" (func $caller (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "caller") (result i32)
    (local $h i64)
    (local.set $h (call $caller))
    (call $output_set (local.get $h) (call $length (local.get $h)))
    (i32.const 0)))`

// TestGetCaller: astrid_get_caller returns the caller context set for the call (the call's
// start keeps it), and {} when there is none.
func TestGetCaller(t *testing.T) {
	e := testEngine(t, false)
	g, v, err := watGuest(t, e, callerWAT, guestConfig{capsuleID: "caller", limits: limitsFor(64 << 20), callTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const alice = `{"principal":"alice","source_id":"0f0e0d0c-0b0a-4908-8706-050403020100","timestamp":"2026-01-02T03:04:05Z"}`
	for _, tc := range []struct{ name, caller, want string }{
		{"none", "", "{}"},
		{"alice", alice, alice},
		{"none again", "", "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v.call.caller = []byte(tc.caller)
			out, gerr, _ := e.call(ctx, g, v, "caller", nil, time.Minute)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if string(out) != tc.want {
				t.Errorf("astrid_get_caller() = %q, want %q", out, tc.want)
			}
		})
	}
}
