package tests

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/astrid-go/astrid/host"
)

// rawRequest is the input of the raw capsule's call export: the host function to call and its
// argument blocks.
type rawRequest struct {
	Fn     string   `json:"fn"`
	Args   [][]byte `json:"args"`
	Repeat int      `json:"repeat,omitempty"`
}

// callRaw has the raw capsule (tests/testdata/capsules/raw) call host function fn with the
// argument blocks args, and returns the function's result block as the guest received it (a
// HostResult keeps its status byte), or the call's error (a trap in the host function).
func callRaw(t testing.TB, inst *host.Instance, fn string, args ...[]byte) ([]byte, error) {
	t.Helper()
	if args == nil {
		args = [][]byte{}
	}
	in, err := json.Marshal(rawRequest{Fn: fn, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return inst.Call(context.Background(), "call", in, 0)
}
