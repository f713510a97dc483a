//go:build wasip1

package intercept

import astrid "github.com/astrid-go/astrid/sdk/go"

// hookTrigger is the interceptor entry point the host calls (upstream's astrid_hook_trigger):
// it decodes the input, runs the handler of its action and writes the verdict as the output.
//
//go:wasmexport astrid_hook_trigger
func hookTrigger() int32 { return astrid.Export(Dispatch) }
