package process

import (
	"fmt"
	"os"
	"sync"

	"github.com/astrid-go/astrid/sandbox"
)

// ASTRID_TEST_SANDBOX=required (or best-effort) runs every test of this package under the real
// sandbox, with the test binary as its helper; unset or "off", they run under policy Off.
func init() {
	testHelperMain = func() { sandbox.HelperMain(os.Args) }
	name := os.Getenv("ASTRID_TEST_SANDBOX")
	if name == "" || name == "off" {
		return
	}
	policy, err := sandbox.ParsePolicy(name)
	if err != nil {
		panic(fmt.Sprintf("ASTRID_TEST_SANDBOX: %v", err))
	}
	self, err := os.Executable()
	if err != nil {
		panic(fmt.Sprintf("ASTRID_TEST_SANDBOX: the test binary: %v", err))
	}
	probe := sync.OnceValue(func() *sandbox.Support { return sandbox.Probe(self) })
	newTestSandbox = func() *sandbox.Sandbox { return sandbox.New(self, policy, probe()) }
}
