//go:build wasip1

// Command procs is a test-only capsule: each export performs the process operation its JSON input
// describes through the SDK, so tests can drive real spawns through a real shim and host.
package main

import (
	"encoding/json"
	"time"

	astrid "github.com/astrid-go/astrid/sdk/go"
)

func main() {}

// request is the tests' description of a process, in the host's JSON field names.
type request struct {
	Cmd       string            `json:"cmd"`
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env"`
	Cwd       string            `json:"cwd"`
	Stdin     string            `json:"stdin"`
	TimeoutMs int64             `json:"timeout_ms"`
	ID        uint64            `json:"id"`
	Signal    string            `json:"signal"`
	Data      string            `json:"data"`
	Close     bool              `json:"close"`
	Count     int               `json:"count"` // start: how many processes to start
}

func (r request) command() astrid.Command {
	return astrid.Command{Cmd: r.Cmd, Args: r.Args, Env: r.Env, Dir: r.Cwd, Stdin: r.Stdin, Timeout: time.Duration(r.TimeoutMs) * time.Millisecond}
}

// do decodes the input, runs op and outputs its result as JSON.
func do(op func(r request) (any, error)) int32 {
	return astrid.Export(func(in []byte) ([]byte, error) {
		var r request
		if err := json.Unmarshal(in, &r); err != nil {
			return nil, err
		}
		res, err := op(r)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	})
}

//go:wasmexport spawn
func spawn() int32 {
	return do(func(r request) (any, error) { return astrid.Spawn(r.command()) })
}

// start starts Count (default 1) background processes and outputs their ids.
//
//go:wasmexport start
func start() int32 {
	return do(func(r request) (any, error) {
		var ids []uint64
		for range max(r.Count, 1) {
			p, err := astrid.SpawnBackground(r.command())
			if err != nil {
				return nil, err
			}
			ids = append(ids, p.ID())
		}
		return ids, nil
	})
}

//go:wasmexport logs
func logs() int32 {
	return do(func(r request) (any, error) { return astrid.FindProcess(r.ID).ReadLogs() })
}

//go:wasmexport kill
func kill() int32 {
	return do(func(r request) (any, error) { return astrid.FindProcess(r.ID).Kill() })
}

//go:wasmexport wait
func wait() int32 {
	return do(func(r request) (any, error) {
		return astrid.FindProcess(r.ID).Wait(time.Duration(r.TimeoutMs) * time.Millisecond)
	})
}

//go:wasmexport signal
func signal() int32 {
	return do(func(r request) (any, error) {
		return "ok", astrid.FindProcess(r.ID).Signal(astrid.Signal(r.Signal))
	})
}

//go:wasmexport write
func write() int32 {
	return do(func(r request) (any, error) {
		p := astrid.FindProcess(r.ID)
		n, err := p.WriteStdin([]byte(r.Data))
		if err == nil && r.Close {
			err = p.CloseStdin()
		}
		return n, err
	})
}

// echo outputs its input: the fault suite's sign of life.
//
//go:wasmexport echo
func echo() int32 {
	return astrid.Export(func(in []byte) ([]byte, error) { return in, nil })
}
