// Package astrid is the Go SDK for writing astrid capsules: WebAssembly
// modules that astrid-host loads, sandboxes and calls.
//
// A capsule is an ordinary Go main package built for WASI as a reactor
// library:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o x.wasm .
//
// The package must have a main function, which is never called (leave it
// empty). Each function the host can call is exported with //go:wasmexport
// and has the type func() int32: it reads its input and writes its output or
// error through this package, and returns 0 on success or non-zero on
// failure. The Go runtime's own export _initialize is run by the host once
// after the module is instantiated, before any other export. Go does not
// allow []byte, string results or uint8 in exported signatures, which is why
// data goes through Input and Output rather than through parameters.
//
// The package reaches the host through the Extism kernel imports
// (extism:host/env), so capsules built with it follow the same ABI as Extism
// plugins, and for IPC and processes through Astrid's host functions
// (extism:host/user). Data crosses in blocks of the kernel memory, separate
// from the capsule's linear memory; the package copies it in and out, so the
// rest of the capsule sees ordinary strings and byte slices:
//
//   - Input and InputString return the call's input; Output and
//     OutputString set its output; SetError and SetErrorString set its error
//     message, reported by the host when the export returns non-zero.
//   - Export wraps a func(input []byte) ([]byte, error) and does all of the
//     above, so most exports are one line.
//   - Config reads the capsule's configuration: its manifest's [env]
//     defaults, overridden by the operator (astrid-host call --config K=V).
//   - Var, SetVar and DeleteVar (and VarInt, SetVarInt for counters) keep
//     byte values that survive from one call to the next while the capsule
//     instance lives, within a total size capped by the host (1 MiB).
//   - Log and Logf write log lines at a LogLevel; lines below
//     CurrentLogLevel, the level the host runs the capsule at
//     (astrid-host --log-level), are skipped without formatting them.
//   - Fetch makes an HTTP request through the host, to the hosts the
//     manifest allows in [capabilities] net.
//   - Publish sends a JSON message on a topic of the host's bus, to every
//     capsule subscribed to it; Subscribe returns a Subscription whose Poll
//     and Recv read the messages published on the topics its pattern
//     matches. The manifest lists what the capsule may publish and subscribe
//     to in [capabilities] ipc_publish and ipc_subscribe (see IPC below).
//   - Spawn runs a command through the host and returns its output;
//     SpawnBackground starts one and returns a Process to read its output
//     from (ReadLogs), wait for (Wait), write to (WriteStdin), signal or
//     kill. The manifest lists the commands in [capabilities] host_process
//     (see Processes below).
//   - KVGet, KVSet, KVDelete, KVListKeys and KVClearPrefix (and KVGetJSON,
//     KVSetJSON) use the capsule's durable key-value store, kept by the host
//     across restarts.
//   - ReadFile, WriteFile, FileExists, Mkdir, ReadDir, Stat and Unlink work on
//     files the host reads and writes for the capsule: the workspace
//     ("cwd://"), the principal's home ("home://") and its "/tmp", within the
//     manifest's fs_read and fs_write.
//   - HTTPSend and HTTPStreamStart make HTTP requests through upstream's
//     astrid_http_* functions (Fetch uses the Extism kernel's).
//   - GetConfig, Caller, ClockMS and Now, AstridLog, CheckCapsuleCapability
//     and TriggerHook wrap upstream's sys and hooks functions.
//   - Package intercept (sdk/go/intercept) exports astrid_hook_trigger and
//     runs the handler registered for each [[interceptor]] action, with
//     HookEvent and Verdict (Continue, Final, Deny) from this package.
//   - Memory, Allocate and FindMemory work with kernel blocks directly, the
//     way host functions exchange data.
//
// Go's linker keeps only the imports a capsule uses, so a capsule that never
// calls Fetch, say, does not import http_request, and one that does no IPC
// does not import the astrid_ipc_* functions.
//
// Upstream's KV reads, ReadFile, ReadDir, Stat and FileExists report the
// host's refusals and failures as a *HostError the capsule may handle (upstream's
// HostResult). Other failures the host detects in a call to it (an HTTP request it refuses or
// that fails, variables over their size cap, an access outside a block, a
// topic or a command the manifest does not allow) trap the export call with
// the host's message: the call fails at once and the capsule cannot catch
// it. The functions here return errors only for what the capsule can detect
// itself.
//
// The package compiles on every platform, so go vet, go doc and editors see
// it as usual, but outside GOOS=wasip1 every call that reaches the kernel
// panics.
//
// # IPC
//
// Capsules talk to each other over the host's bus: a message is a JSON
// value published on a topic, a dot-separated name such as
// "ping.v1.request", and goes to every subscription whose pattern matches
// the topic. In a pattern a "*" segment matches any one segment, or, as
// the last segment, one or more ("ping.*" matches "ping.v1.request").
// Messages wait in the subscription's queue in the host until the capsule
// reads them: Poll returns what is queued at once, Recv waits up to a
// timeout (at most MaxRecvTimeout) for something to arrive. Each Message has
// its topic, its publisher, a timestamp and its payload, which Decode
// unmarshals as Publish marshalled it.
//
// A capsule may publish only to the topics matched by a pattern of its
// manifest's [capabilities] ipc_publish, and subscribe only to patterns
// covered by one of its ipc_subscribe:
//
//	[capabilities]
//	ipc_publish = ["ping.v1.request"]
//	ipc_subscribe = ["ping.v1.reply"]
//
// A capsule that asks a question subscribes to the answers before it asks,
// since a subscription receives only what is published after it is made:
//
//	sub, err := astrid.Subscribe("ping.v1.reply")
//	if err != nil {
//		return nil, err
//	}
//	defer sub.Unsubscribe()
//	if err := astrid.Publish("ping.v1.request", map[string]int{"n": 1}); err != nil {
//		return nil, err
//	}
//	env, err := sub.Recv(5 * time.Second)
//	if err != nil {
//		return nil, err
//	}
//	for _, m := range env.Messages {
//		var reply struct{ N int }
//		if err := m.Decode(&reply); err != nil {
//			return nil, err
//		}
//		astrid.Logf(astrid.LogInfo, "reply %d from %s", reply.N, m.SourceID)
//	}
//
// Subscriptions, unlike kernel blocks, outlive the call that made them: a
// capsule with a run export (a run-loop capsule, which the host starts once
// after loading it and never times out) typically subscribes once and then
// calls Recv in a loop. The repository's examples/ping and examples/pong are
// a pair of capsules that talk this way; pong's run export is such a loop.
//
// # Processes
//
// A capsule may ask the host to run the programs its manifest lists, each by
// the exact path the capsule will use:
//
//	[capabilities]
//	host_process = ["/bin/sh"]
//
// The host runs them sandboxed, in the capsule's workspace, with a cleared
// environment; what goes in and out crosses as JSON text. Spawn runs one to
// the end, at most for the Command's Timeout:
//
//	res, err := astrid.Spawn(astrid.Command{
//		Cmd:     "/bin/sh",
//		Args:    []string{"-c", "ls | wc -l"},
//		Timeout: 5 * time.Second,
//	})
//	if err != nil {
//		return nil, err
//	}
//	if !res.Success() {
//		return nil, fmt.Errorf("exit code %d: %s", res.ExitCode, res.Stderr)
//	}
//	return []byte(res.Stdout), nil
//
// SpawnBackground starts one and returns at once. The host keeps the newest
// 1 MiB of each of its output streams; ReadLogs drains them, Wait waits for
// the process to end, up to a timeout, and Kill ends it (and what it
// started), returns the output not read yet and releases it: the host
// allows 8 background processes per capsule, counting those that have ended
// until they are killed.
//
//	p, err := astrid.SpawnBackground(astrid.Command{Cmd: "/bin/sh", Args: []string{"-c", script}})
//	if err != nil {
//		return err
//	}
//	defer p.Kill()
//	for {
//		if _, err := p.Wait(200 * time.Millisecond); err != nil {
//			return err
//		}
//		logs, err := p.ReadLogs()
//		if err != nil {
//			return err
//		}
//		astrid.Log(astrid.LogInfo, logs.Stdout)
//		if !logs.Running {
//			return nil
//		}
//	}
//
// A background process lives until Kill or the end of the capsule instance,
// not just the call that started it: a run-loop capsule may follow it for as
// long as it runs. examples/runner streams a script's output onto the bus
// this way, and feeds a process's stdin with WriteStdin and CloseStdin.
//
// # Example
//
// A capsule is a directory with a Capsule.toml manifest and the built .wasm
// file. examples/demo in this repository greets with a configurable greeting,
// counts its calls, logs, and fetches pages over HTTP. Its Capsule.toml:
//
//	[package]
//	name = "demo"
//	version = "0.1.0"
//	description = "Greets, counts its calls and fetches pages of example.com"
//	astrid-version = ">=0.5.0"
//
//	[[component]]
//	id = "demo"
//	file = "demo.wasm"
//
//	[capabilities]
//	net = ["example.com"]
//
//	[env]
//	greeting = { type = "string", description = "How to greet", default = "Hello" }
//	base_url = { type = "string", description = "Where fetch gets pages from", default = "https://example.com" }
//
//	[limits]
//	memory = "64MiB"
//	call_timeout = "10s"
//
// main.go:
//
//	//go:build wasip1
//
//	package main
//
//	import (
//		"errors"
//		"fmt"
//
//		astrid "github.com/astrid-go/astrid/sdk/go"
//	)
//
//	func main() {}
//
//	//go:wasmexport greet
//	func greet() int32 { return astrid.Export(greetName) }
//
//	// greetName greets the name given as input, with the greeting from the
//	// configuration, and says how many times it has been called.
//	func greetName(name []byte) ([]byte, error) {
//		if len(name) == 0 {
//			return nil, errors.New("greet: input is empty; pass a name, e.g. --input world")
//		}
//		greeting, ok := astrid.Config("greeting")
//		if !ok {
//			greeting = "Hello"
//		}
//		calls, _ := astrid.VarInt("calls") // 0 on the first call
//		calls++
//		astrid.SetVarInt("calls", calls)
//		astrid.Logf(astrid.LogDebug, "greeting %q, call %d", name, calls)
//		return fmt.Appendf(nil, "%s, %s! (call %d)", greeting, name, calls), nil
//	}
//
//	//go:wasmexport fetch
//	func fetch() int32 { return astrid.Export(fetchPath) }
//
//	// fetchPath returns the page at the path given as input, under the
//	// configured base_url.
//	func fetchPath(path []byte) ([]byte, error) {
//		base, ok := astrid.Config("base_url")
//		if !ok {
//			return nil, errors.New("fetch: base_url is not configured")
//		}
//		resp, err := astrid.Fetch(astrid.HTTPRequest{
//			Method:  "GET",
//			URL:     base + "/" + string(path),
//			Headers: map[string]string{"Accept": "text/html"},
//		}, nil)
//		if err != nil {
//			return nil, err
//		}
//		astrid.Logf(astrid.LogInfo, "fetched %d bytes, status %d", len(resp.Body), resp.Status)
//		if resp.Status != 200 {
//			return nil, fmt.Errorf("fetch: %s/%s: status %d", base, path, resp.Status)
//		}
//		return resp.Body, nil
//	}
//
// Build it in the capsule's directory, then call its exports. Flags may come
// before or after the capsule directory and the export name:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o demo.wasm .
//	astrid-host call . greet --input world
//	astrid-host call . greet --input world --config greeting=Hi
//	astrid-host call . greet --input world --log-level debug
//	astrid-host call . fetch --log-level info
//
// The first prints "Hello, world! (call 1)", the second "Hi, world! (call 1)":
// each astrid-host call loads a fresh instance, so its variables start empty.
// The third also shows the capsule's debug line on stderr. A failed export
// makes astrid-host call print "error: " and the message on stderr and exit
// with status 1.
//
// The repository's examples/hello and examples/counter are complete capsules
// built this way.
package astrid
