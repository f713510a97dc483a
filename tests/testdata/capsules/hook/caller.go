//go:build wasip1

package main

import (
	"encoding/json"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

//go:wasmimport extism:host/user astrid_get_caller
func hostGetCaller() uint64

// caller is the caller context as astrid_get_caller returns it.
func caller() json.RawMessage {
	h := hostGetCaller()
	if h == 0 {
		return json.RawMessage("null")
	}
	m := astrid.FindMemory(h)
	b := m.Bytes()
	m.Free()
	return b
}
