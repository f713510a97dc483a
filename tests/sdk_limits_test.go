package tests

import (
	"testing"

	astrid "github.com/astrid-go/astrid/sdk/go"
	"github.com/astrid-go/astrid/shared"
)

// TestSDKLimitsMatchHost: the limits sdk/go checks before calling a host function are the
// host's (shared.HostCalls), so the SDK refuses exactly what the host would trap on.
func TestSDKLimitsMatchHost(t *testing.T) {
	tests := []struct {
		name     string
		sdk, ref int
	}{
		{"KV key", astrid.MaxKVKeyBytes, shared.MaxKVKeyBytes},
		{"KV value", astrid.MaxKVValueBytes, shared.MaxPayloadBytes},
		{"path", astrid.MaxPathBytes, shared.MaxPathBytes},
		{"file", astrid.MaxFileBytes, shared.MaxPayloadBytes},
		{"hook request", astrid.MaxHookRequestBytes, shared.MaxHookRequestBytes},
		{"capability request", astrid.MaxCapabilityRequestBytes, shared.MaxCapabilityRequestBytes},
		{"HTTP request", astrid.MaxHTTPRequestBytes, shared.MaxPayloadBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sdk != tt.ref {
				t.Fatalf("sdk/go checks %d bytes, the host %d", tt.sdk, tt.ref)
			}
		})
	}
}
