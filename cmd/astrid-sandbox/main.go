// Command astrid-sandbox is the sandbox helper astrid-host starts its shims and capsules'
// processes through (see package sandbox). It is astrid-host's own helper mode in a program that
// links nothing but package sandbox, so that it starts in a fraction of astrid-host's time: a
// helper runs once per shim start, and astrid-host's package initialisation (protobuf
// descriptors, gRPC, NATS, Prometheus, semver's regexps) cost each one some 35 ms of CPU.
//
// It is not meant to be run by hand: astrid-host uses it when it lies next to astrid-host and
// passes the checks the shim passes (see host.VerifyHelper), and re-executes itself otherwise.
package main

import (
	"os"

	"github.com/astrid-go/astrid/sandbox"
)

func main() {
	sandbox.HelperMain(os.Args)
}
