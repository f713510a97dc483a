// Package host is the astrid runtime: it loads capsules, runs each in its own astrid-shim process
// (started through go-plugin and confined by package sandbox), serves the host functions each
// shim calls back into, owns the bus they publish on, and stops everything it started.
// astrid-host is a command-line front end to it; a Go program can embed it the same way.
//
// # Embedding
//
// A program that embeds the runtime needs the astrid-shim executable (built from cmd/astrid-shim;
// FindShim looks next to the program and on $PATH) and does five things:
//
//  1. Answer the sandbox first: shims are confined by re-executing the program itself as the
//     sandbox helper, so main starts with the lines below.
//  2. Verify the shim (VerifyShim: a regular file no one else may write, pinned by its SHA-256)
//     and probe the sandbox (sandbox.Probe, sandbox.New with a policy).
//  3. Start a Host with New(Config{...}); StateDir holds the module cache.
//  4. Load capsules: manifest.Load(dir) reads and validates a capsule directory, Host.Load (one),
//     Host.LoadAll (several at once) or Host.Boot (several, in dependency order, as `run` does;
//     DiscoverInstalled and ReadCapsules find them as `run` does) start them; Instance.Call
//     invokes an export, and Host.Publish and Host.Bus reach the bus.
//  5. Host.Shutdown stops every capsule, newest first, and leaves no process behind.
//
// The first lines of such a main:
//
//	if len(os.Args) > 1 && os.Args[1] == sandbox.HelperArg {
//		sandbox.HelperMain(os.Args[1:]) // never returns
//	}
//
// examples/embed is that program, complete, and the tests run it.
//
// # Authority
//
// The host is the only authority. A shim is never trusted with anything: what it may do is decided
// here, keyed on the connection a request came from (each shim gets its own HostServices server,
// which accepts only that shim's process). The rules a guest call must pass live in one place
// each (bus/guard for IPC, host/process for processes, host/httpgate for HTTP); the shim runs the
// same checks early only to give the guest its error at once. docs/architecture.md traces a call,
// a publish and a spawn through the code.
package host
