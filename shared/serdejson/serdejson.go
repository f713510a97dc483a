// Package serdejson encodes JSON the way upstream Astrid's serde_json writes it, for the texts a
// guest compares byte for byte: no HTML escaping of <, > and &, and no trailing newline. It is the
// one encoder the host uses for what it hands a guest (host function results, caller contexts,
// interceptor inputs, event payloads).
package serdejson

import (
	"bytes"
	"encoding/json"
)

// Marshal encodes v like json.Marshal, but without HTML escaping, as serde_json does.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
