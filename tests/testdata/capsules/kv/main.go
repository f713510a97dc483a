//go:build wasip1

// Command kv is a test-only capsule for the KV host functions. It uses no SDK: it declares the
// Extism kernel and astrid_kv_* itself, with upstream's module name and signatures (every
// argument and result an i64 block offset), as astrid-sys 0.5 does.
//
//   - call: {"fn": NAME, "args": [base64...], "repeat": n} calls astrid_kv_NAME and returns its
//     result block exactly as the host wrote it (a HostResult keeps its status byte); a trap in
//     the host function fails the call with the trap's message.
//   - fill: {"prefix","start","count","size"} sets keys prefix+%06d, start ≤ i < start+count, to
//     value(i, size), and returns {"written": n}.
//   - check: the same input; returns {"ok": n, "missing": [i...], "wrong": [i...]}.
//   - run: a run loop that sets storm.%08d = value(i, stormSize) for i = 0, 1, … and publishes
//     {"name": config storm_name, "i": i} on kvtest.v1.acked after each set returns.
package main

import (
	"encoding/json"
	"fmt"
	"strconv"
)

func main() {}

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env free
func free(h uint64)

//go:wasmimport extism:host/env length
func length(h uint64) uint64

//go:wasmimport extism:host/env load_u8
func loadU8(addr uint64) uint32

//go:wasmimport extism:host/env store_u8
func storeU8(addr uint64, v uint32)

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(i uint64) uint32

//go:wasmimport extism:host/env output_set
func outputSet(h, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(h uint64)

//go:wasmimport extism:host/env config_get
func configGet(key uint64) uint64

//go:wasmimport extism:host/user astrid_kv_get
func astridKvGet(key uint64) uint64

//go:wasmimport extism:host/user astrid_kv_set
func astridKvSet(key, value uint64)

//go:wasmimport extism:host/user astrid_kv_delete
func astridKvDelete(key uint64)

//go:wasmimport extism:host/user astrid_kv_list_keys
func astridKvListKeys(prefix uint64) uint64

//go:wasmimport extism:host/user astrid_kv_clear_prefix
func astridKvClearPrefix(prefix uint64) uint64

//go:wasmimport extism:host/user astrid_ipc_publish
func astridIpcPublish(topic, payload uint64)

//go:wasmimport extism:host/user astrid_signal_ready
func astridSignalReady()

var funcs = map[string]func(a []uint64) uint64{
	"astrid_kv_get":          func(a []uint64) uint64 { return astridKvGet(a[0]) },
	"astrid_kv_set":          func(a []uint64) uint64 { astridKvSet(a[0], a[1]); return 0 },
	"astrid_kv_delete":       func(a []uint64) uint64 { astridKvDelete(a[0]); return 0 },
	"astrid_kv_list_keys":    func(a []uint64) uint64 { return astridKvListKeys(a[0]) },
	"astrid_kv_clear_prefix": func(a []uint64) uint64 { return astridKvClearPrefix(a[0]) },
}

type callRequest struct {
	Fn     string   `json:"fn"`
	Args   [][]byte `json:"args"`
	Repeat int      `json:"repeat"`
}

//go:wasmexport call
func call() int32 {
	var req callRequest
	if err := json.Unmarshal(input(), &req); err != nil {
		return fail("bad input: " + err.Error())
	}
	f, ok := funcs[req.Fn]
	if !ok {
		return fail("no such host function: " + req.Fn)
	}
	var out uint64
	for n := 0; n < max(req.Repeat, 1); n++ {
		blocks := make([]uint64, len(req.Args))
		for i, a := range req.Args {
			blocks[i] = block(a)
		}
		out = f(blocks)
	}
	if out != 0 {
		outputSet(out, length(out))
	}
	return 0
}

type rangeRequest struct {
	Prefix string `json:"prefix"`
	Start  int    `json:"start"`
	Count  int    `json:"count"`
	Size   int    `json:"size"`
}

//go:wasmexport fill
func fill() int32 {
	var req rangeRequest
	if err := json.Unmarshal(input(), &req); err != nil {
		return fail("bad input: " + err.Error())
	}
	for i := req.Start; i < req.Start+req.Count; i++ {
		k, v := block(key(req.Prefix, i)), block(value(i, req.Size))
		astridKvSet(k, v)
		free(k)
		free(v)
	}
	return output(map[string]int{"written": req.Count})
}

//go:wasmexport check
func check() int32 {
	var req rangeRequest
	if err := json.Unmarshal(input(), &req); err != nil {
		return fail("bad input: " + err.Error())
	}
	res := struct {
		OK      int   `json:"ok"`
		Missing []int `json:"missing"`
		Wrong   []int `json:"wrong"`
	}{Missing: []int{}, Wrong: []int{}}
	for i := req.Start; i < req.Start+req.Count; i++ {
		k := block(key(req.Prefix, i))
		h := astridKvGet(k)
		got := read(h)
		free(k)
		free(h)
		switch {
		case len(got) == 0 || got[0] != 0:
			return fail(fmt.Sprintf("kv_get %d: %q", i, got))
		case len(got) == 1 && req.Size > 0:
			res.Missing = append(res.Missing, i)
		case string(got[1:]) != string(value(i, req.Size)):
			res.Wrong = append(res.Wrong, i)
		default:
			res.OK++
		}
	}
	return output(res)
}

// stormSize is the size of each value the run loop writes: more than a 4 KiB page, so a torn
// write would show.
const stormSize = 6000

//go:wasmexport run
func run() int32 {
	astridSignalReady()
	name := string(read(configGet(block([]byte("storm_name")))))
	topic := block([]byte("kvtest.v1.acked"))
	for i := 0; ; i++ {
		k, v := block(key("storm.", i)), block(value(i, stormSize))
		astridKvSet(k, v)
		msg, _ := json.Marshal(map[string]any{"name": name, "i": i})
		m := block(msg)
		astridIpcPublish(topic, m)
		free(k)
		free(v)
		free(m)
	}
}

func key(prefix string, i int) []byte { return fmt.Appendf(nil, "%s%06d", prefix, i) }

// value is the deterministic value of entry i: "i;" repeated to size bytes.
func value(i, size int) []byte {
	unit := strconv.AppendInt(nil, int64(i), 10)
	unit = append(unit, ';')
	out := make([]byte, size)
	for k := range out {
		out[k] = unit[k%len(unit)]
	}
	return out
}

func input() []byte {
	in := make([]byte, inputLength())
	for i := range in {
		in[i] = byte(inputLoadU8(uint64(i)))
	}
	return in
}

// read copies a kernel block (0 is empty).
func read(h uint64) []byte {
	if h == 0 {
		return nil
	}
	out := make([]byte, length(h))
	for i := range out {
		out[i] = byte(loadU8(h + uint64(i)))
	}
	return out
}

// block copies b into a new kernel block.
func block(b []byte) uint64 {
	h := alloc(uint64(len(b)))
	for i, c := range b {
		storeU8(h+uint64(i), uint32(c))
	}
	return h
}

func output(v any) int32 {
	b, err := json.Marshal(v)
	if err != nil {
		return fail(err.Error())
	}
	h := block(b)
	outputSet(h, uint64(len(b)))
	return 0
}

func fail(msg string) int32 {
	errorSet(block([]byte(msg)))
	return 1
}
