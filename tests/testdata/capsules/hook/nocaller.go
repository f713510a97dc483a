//go:build wasip1

package main

import "encoding/json"

// caller is the caller context as astrid_get_caller returns it; null until the shim provides it.
func caller() json.RawMessage { return json.RawMessage("null") }
