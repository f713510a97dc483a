//go:build wasip1

// Command demo is the example capsule of the Go SDK's documentation: input, output, errors,
// configuration, variables, logging and HTTP.
package main

import (
	"errors"
	"fmt"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

//go:wasmexport greet
func greet() int32 { return astrid.Export(greetName) }

// greetName greets the name given as input, with the greeting from the configuration, and says
// how many times it has been called.
func greetName(name []byte) ([]byte, error) {
	if len(name) == 0 {
		return nil, errors.New("greet: input is empty; pass a name, e.g. --input world")
	}
	greeting, ok := astrid.Config("greeting")
	if !ok {
		greeting = "Hello"
	}
	calls, _ := astrid.VarInt("calls") // 0 on the first call
	calls++
	astrid.SetVarInt("calls", calls)
	astrid.Logf(astrid.LogDebug, "greeting %q, call %d", name, calls)
	return fmt.Appendf(nil, "%s, %s! (call %d)", greeting, name, calls), nil
}

//go:wasmexport fetch
func fetch() int32 { return astrid.Export(fetchPath) }

// fetchPath returns the page at the path given as input, under the configured base_url.
func fetchPath(path []byte) ([]byte, error) {
	base, ok := astrid.Config("base_url")
	if !ok {
		return nil, errors.New("fetch: base_url is not configured")
	}
	resp, err := astrid.Fetch(astrid.HTTPRequest{
		Method:  "GET",
		URL:     base + "/" + string(path),
		Headers: map[string]string{"Accept": "text/html"},
	}, nil)
	if err != nil {
		return nil, err
	}
	astrid.Logf(astrid.LogInfo, "fetched %d bytes, status %d", len(resp.Body), resp.Status)
	if resp.Status != 200 {
		return nil, fmt.Errorf("fetch: %s/%s: status %d", base, path, resp.Status)
	}
	return resp.Body, nil
}
