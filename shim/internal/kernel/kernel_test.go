package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// The shim's configuration: epoch interruption always on, a memory limit per Store.
type testEngine struct {
	engine *wasmtime.Engine
	kernel *wasmtime.Module
	guest  *wasmtime.Module
}

var (
	engineOnce sync.Once
	sharedEng  *testEngine
	engineErr  error
)

func newTestEngine(fuel bool) (*testEngine, error) {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	cfg.SetConsumeFuel(fuel)
	engine := wasmtime.NewEngineWithConfig(cfg)
	k, err := Compile(engine)
	if err != nil {
		return nil, err
	}
	wat, err := os.ReadFile("testdata/guest.wat")
	if err != nil {
		return nil, err
	}
	wasm, err := wasmtime.Wat2Wasm(string(wat))
	if err != nil {
		return nil, fmt.Errorf("guest.wat: %w", err)
	}
	g, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		return nil, err
	}
	return &testEngine{engine: engine, kernel: k, guest: g}, nil
}

func getEngine(t testing.TB) *testEngine {
	t.Helper()
	engineOnce.Do(func() { sharedEng, engineErr = newTestEngine(false) })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return sharedEng
}

// env is one Store with the kernel and the test guest, as the shim builds it.
type env struct {
	t      testing.TB
	store  *wasmtime.Store
	k      *Kernel
	linker *wasmtime.Linker
	inst   *wasmtime.Instance
	// hostErr records a failure inside a host function (reported by the test after the call).
	hostErr error
}

const testMemLimit = 16 << 20

func newEnv(t testing.TB, limit int64) *env {
	t.Helper()
	return newEnvWith(t, getEngine(t), limit)
}

func newEnvWith(t testing.TB, te *testEngine, limit int64) *env {
	t.Helper()
	store := wasmtime.NewStore(te.engine)
	store.Limiter(limit, -1, -1, -1, -1)
	k, err := New(store, te.kernel, uint64(limit))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, k: k}
	linker := wasmtime.NewLinker(te.engine)
	e.linker = linker
	if err := k.Define(store, linker); err != nil {
		t.Fatal(err)
	}
	i64 := wasmtime.NewValType(wasmtime.KindI64)
	upperType := wasmtime.NewFuncType([]*wasmtime.ValType{i64}, []*wasmtime.ValType{i64})
	// upper reads its argument block with Read and returns an upper-cased copy made with Alloc,
	// through the Store (as a host function that has no Caller at hand would).
	if err := linker.Define(store, "test", "upper", wasmtime.NewFunc(store, upperType,
		func(_ *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			in, err := k.Read(store, uint64(args[0].I64()))
			if err != nil {
				e.hostErr = err
				return nil, wasmtime.NewTrap(err.Error())
			}
			h, err := k.Alloc(store, bytes.ToUpper(in))
			if err != nil {
				e.hostErr = err
				return nil, wasmtime.NewTrap(err.Error())
			}
			return []wasmtime.Val{wasmtime.ValI64(int64(h))}, nil
		})); err != nil {
		t.Fatal(err)
	}
	if err := linker.Define(store, "test", "upper_caller", wasmtime.NewFunc(store, upperType,
		func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			in, err := k.ReadCaller(c, uint64(args[0].I64()))
			if err != nil {
				e.hostErr = err
				return nil, wasmtime.NewTrap(err.Error())
			}
			h, err := k.AllocCaller(c, bytes.ToUpper(in))
			if err != nil {
				e.hostErr = err
				return nil, wasmtime.NewTrap(err.Error())
			}
			if err := checkMemoryViews(c, k); err != nil { // after AllocCaller, which may grow them
				e.hostErr = err
				return nil, wasmtime.NewTrap(err.Error())
			}
			return []wasmtime.Val{wasmtime.ValI64(int64(h))}, nil
		})); err != nil {
		t.Fatal(err)
	}
	inst, err := linker.Instantiate(store, te.guest)
	if err != nil {
		t.Fatal(err)
	}
	e.inst = inst
	return e
}

type result struct {
	out    []byte
	errMsg string
	failed bool
	err    error // from the guest call (a trap)
	outErr error // from Output
}

// call runs one guest call the way the shim does: BeginCall, then the epoch deadline, then the
// export, then Output.
func (e *env) call(export string, input []byte) result {
	e.t.Helper()
	if err := e.k.BeginCall(e.store, input); err != nil {
		e.t.Fatalf("BeginCall(%d bytes): %v", len(input), err)
	}
	f := e.inst.GetFunc(e.store, export)
	if f == nil {
		e.t.Fatalf("no export %s", export)
	}
	e.store.SetEpochDeadline(1 << 30)
	_, err := f.Call(e.store)
	if err != nil {
		return result{err: err}
	}
	var r result
	r.out, r.errMsg, r.failed, r.outErr = e.k.Output(e.store)
	return r
}

// words calls export and decodes its output as little-endian u64 words.
func (e *env) words(export string, input []byte) []uint64 {
	e.t.Helper()
	r := e.call(export, input)
	if r.err != nil || r.outErr != nil || r.failed {
		e.t.Fatalf("%s: err=%v outErr=%v errMsg=%q", export, r.err, r.outErr, r.errMsg)
	}
	if len(r.out)%8 != 0 {
		e.t.Fatalf("%s: %d bytes of output", export, len(r.out))
	}
	w := make([]uint64, len(r.out)/8)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(r.out[8*i:])
	}
	return w
}

func word(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// causedBy is the one-line message of a host-raised trap, as the shim extracts it.
func causedBy(err error) string {
	text := err.Error()
	if i := strings.Index(text, "Caused by:"); i >= 0 {
		rest := strings.TrimSpace(text[i+len("Caused by:"):])
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		return strings.TrimSpace(rest)
	}
	return text
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8 + 1)
	}
	return b
}

func TestEchoAndCopy(t *testing.T) {
	e := newEnv(t, testMemLimit)
	for _, export := range []string{"echo", "copy"} {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 1000, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", export, n), func(t *testing.T) {
				in := pattern(n)
				r := e.call(export, in)
				if r.err != nil || r.outErr != nil || r.failed {
					t.Fatalf("err=%v outErr=%v failed=%v %q", r.err, r.outErr, r.failed, r.errMsg)
				}
				if r.out == nil || !bytes.Equal(r.out, in) {
					t.Fatalf("output %d bytes (nil=%v), want %d bytes equal to the input", len(r.out), r.out == nil, n)
				}
			})
		}
	}
}

func TestInputOffsetAndLength(t *testing.T) {
	e := newEnv(t, testMemLimit)
	if err := e.k.BeginCall(e.store, nil); err != nil {
		t.Fatal(err)
	}
	e.store.SetEpochDeadline(1 << 30)
	for _, name := range []string{"input_length", "input_offset"} {
		v, err := e.k.funcs[name].Call(e.store)
		if err != nil || v.(int64) != 0 {
			t.Errorf("empty input: %s = %v, %v; want 0", name, v, err)
		}
	}
	if err := e.k.BeginCall(e.store, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	n, _ := e.k.funcs["input_length"].Call(e.store)
	off, _ := e.k.funcs["input_offset"].Call(e.store)
	if n.(int64) != 5 || off.(int64) == 0 {
		t.Fatalf("input_length=%v input_offset=%v", n, off)
	}
	got, err := e.k.Read(e.store, uint64(off.(int64)))
	if err != nil || string(got) != "hello" {
		t.Fatalf("Read(input_offset) = %q, %v", got, err)
	}
}

func TestOutputAndError(t *testing.T) {
	e := newEnv(t, testMemLimit)
	tests := []struct {
		export  string
		input   string
		out     []byte // nil: no output
		errMsg  string
		failed  bool
		outErr  string
		nilWant bool
	}{
		{export: "fail", errMsg: "guest says no: \u00fcnicode", failed: true, nilWant: true},
		{export: "fail_then_clear", nilWant: true},
		{export: "nothing", nilWant: true},
		{export: "empty", out: []byte{}},
		{export: "free_input", input: "still here", out: []byte("still here")},
		{export: "output_then_free", outErr: "the output block 0x10 was freed after output_set"},
	}
	for _, tc := range tests {
		t.Run(tc.export, func(t *testing.T) {
			r := e.call(tc.export, []byte(tc.input))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.failed != tc.failed || r.errMsg != tc.errMsg {
				t.Errorf("failed=%v errMsg=%q, want %v %q", r.failed, r.errMsg, tc.failed, tc.errMsg)
			}
			if tc.outErr != "" {
				if r.outErr == nil || !strings.Contains(r.outErr.Error(), tc.outErr) {
					t.Errorf("Output error %v, want %q", r.outErr, tc.outErr)
				}
				return
			}
			if r.outErr != nil {
				t.Fatal(r.outErr)
			}
			if tc.nilWant != (r.out == nil) || !bytes.Equal(r.out, tc.out) {
				t.Errorf("output %q (nil=%v), want %q (nil=%v)", r.out, r.out == nil, tc.out, tc.nilWant)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, testMemLimit)
	input64 := pattern(64)
	tests := []struct {
		export string
		input  []byte
		want   string
	}{
		{"load_u64_past_end", nil, "extism kernel: load_u64 at address 0x18 (8 bytes) is outside every live block (it runs past the end of the 12-byte block 0x10)"},
		{"load_u8_unknown", nil, "extism kernel: load_u8 at address 0x12345 (1 byte) is outside every live block"},
		{"load_u64_huge", nil, "extism kernel: load_u64 at address 0xfffffffffffffffc (8 bytes) is outside every live block"},
		{"store_u64_freed", nil, "extism kernel: store_u64 at address 0x10 (8 bytes) is outside every live block (block 0x10 was freed)"},
		{"store_u64_into_next", nil, "extism kernel: store_u64 at address 0x10 (8 bytes) is outside every live block (it runs past the end of the 4-byte block 0x10)"},
		{"store_u8_zero", nil, "extism kernel: store_u8 at address 0x0 (1 byte) is outside every live block"},
		{"load_cached_then_freed", nil, "extism kernel: load_u64 at address 0x10 (8 bytes) is outside every live block (block 0x10 was freed)"},
		{"store_cached_then_freed_last", nil, "extism kernel: store_u8 at address 0x10 (1 byte) is outside every live block"},
		{"input_load_u8_oob", input64, "extism kernel: input_load_u8: offset 64 is past the end of the 64-byte input"},
		{"input_load_u64_oob", input64, "extism kernel: input_load_u64: offset 57 (8 bytes) is past the end of the 64-byte input"},
		{"input_load_u8_oob", nil, "extism kernel: input_load_u8: offset 0 is past the end of the 0-byte input"},
		{"output_set_unknown", nil, "extism kernel: output_set: handle 0x40 is not a live block"},
		{"output_set_interior", nil, "extism kernel: output_set: handle 0x18 is not a live block"},
		{"output_set_too_long", nil, "extism kernel: output_set: length 5 exceeds the 4-byte block 0x10"},
		{"output_set_zero_handle", nil, "extism kernel: output_set: handle 0x0 is not a live block"},
		{"error_set_unknown", nil, "extism kernel: error_set: handle 0x99 is not a live block"},
		{"error_set_freed", nil, "extism kernel: error_set: handle 0x10 is not a live block"},
	}
	for _, tc := range tests {
		t.Run(tc.export, func(t *testing.T) {
			r := e.call(tc.export, tc.input)
			if r.err == nil {
				t.Fatalf("no trap; output %q", r.out)
			}
			if got := causedBy(r.err); got != tc.want {
				t.Errorf("trap message\n got %q\nwant %q\n(full error: %v)", got, tc.want, r.err)
			}
			// A host-raised trap, never a bare `unreachable` that would look like a guest's own.
			var trap *wasmtime.Trap
			if errors.As(r.err, &trap) && trap.Code() != nil && *trap.Code() == wasmtime.UnreachableCodeReached {
				t.Errorf("kernel fault surfaced as `unreachable`: %v", r.err)
			}
		})
	}
	// The Store stays usable after a kernel trap (the shim discards it anyway).
	if r := e.call("echo", []byte("after")); r.err != nil || string(r.out) != "after" {
		t.Fatalf("echo after faults: %q %v", r.out, r.err)
	}
}

func TestLengths(t *testing.T) {
	e := newEnv(t, testMemLimit)
	got := e.words("lengths", nil)
	want := []uint64{0, 0, 0, 0x10, 5, 5, 0, 0, 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("[length(0) length(unknown) alloc(0) h length length_unsafe freed freed-twice interior] = %v, want %v", got, want)
	}
}

func TestReuse(t *testing.T) {
	e := newEnv(t, testMemLimit)
	w := e.words("reuse", nil)
	a, b, c, d, ee, lenD, f, g, lenB2 := w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]
	if a != 0x10 || b != 0x20 {
		t.Errorf("a=%#x b=%#x, want 0x10 0x20 (8-byte aligned bump allocation)", a, b)
	}
	if c != b {
		t.Errorf("c=%#x: freeing the last block must let the next alloc reuse it (%#x)", c, b)
	}
	if d != a {
		t.Errorf("d=%#x: freeing the last block must also pop the dead blocks before it (want %#x)", d, a)
	}
	if ee != 0x18 || lenD != 1 {
		t.Errorf("e=%#x length(d)=%d, want 0x18 1", ee, lenD)
	}
	if b2 := ee + 1000; f != b2+8 || g != f+8 || lenB2 != 0 {
		t.Errorf("b2=%#x f=%#x g=%#x length(b2)=%d: a freed block in the middle stays dead", b2, f, g, lenB2)
	}
	if got := e.words("zeroed", nil); got[0] != 0 || got[1] != 0 {
		t.Errorf("zeroed: reused=%d load=%#x, want the same address, zeroed", got[0], got[1])
	}
}

func TestManyBlocks(t *testing.T) {
	e := newEnv(t, testMemLimit)
	const n = 20000
	var sum, lens uint64
	for i := uint64(1); i < n; i += 2 {
		sum += i & 0xff
		lens += i%8 + 1
	}
	got := e.words("many", word(n))
	if got[0] != sum || got[1] != lens {
		t.Fatalf("many: %v, want [%d %d]", got, sum, lens)
	}
}

func TestAllocLimit(t *testing.T) {
	const limit = 4 << 20
	e := newEnv(t, limit)
	for _, n := range []uint64{limit + 1, 64 << 20, 1 << 32, 1 << 40, ^uint64(0), ^uint64(0) - 15} {
		got := e.words("alloc_n", word(n))
		if got[0] != 0 {
			t.Errorf("alloc(%d) = %#x, want 0 beyond the %d-byte limit", n, got[0], limit)
		}
		if got[1] == 0 {
			t.Errorf("alloc(8) after a failed alloc(%d) = 0", n)
		}
	}
	// Up to the limit works: the block index keeps its one page, and the first 16 bytes, the
	// 8-byte input, the 8-byte block and the 16-byte output are in the way.
	most := uint64(limit - wasmPage - 16 - 8 - 8 - 16)
	if got := e.words("alloc_n", word(most)); got[0] == 0 {
		t.Errorf("alloc(%d) = 0, want a block: it fits beside the one-page index", most)
	}
	// Exactly: from the Go side, the data may fill all but the index's page; one byte more fails.
	for _, tc := range []struct {
		n    int
		fits bool
	}{{limit - wasmPage - firstBlock, true}, {limit - wasmPage - firstBlock + 1, false}} {
		if err := e.k.BeginCall(e.store, nil); err != nil {
			t.Fatal(err)
		}
		h, err := e.k.Alloc(e.store, make([]byte, tc.n))
		if fits := err == nil && h != 0; fits != tc.fits {
			t.Errorf("Alloc(%d bytes) = %#x, %v; want it to fit: %v", tc.n, h, err, tc.fits)
		}
	}
	// The Go side fails cleanly too.
	if err := e.k.BeginCall(e.store, make([]byte, limit)); !errors.Is(err, ErrOutOfMemory) {
		t.Errorf("BeginCall(limit bytes) = %v, want ErrOutOfMemory", err)
	}
	if err := e.k.BeginCall(e.store, nil); err != nil {
		t.Fatal(err)
	}
	if h, err := e.k.Alloc(e.store, make([]byte, limit)); h != 0 || !errors.Is(err, ErrOutOfMemory) {
		t.Errorf("Alloc(limit bytes) = %#x, %v, want ErrOutOfMemory", h, err)
	}
	if h, err := e.k.Alloc(e.store, []byte("x")); h == 0 || err != nil {
		t.Errorf("Alloc after a failed Alloc = %#x, %v", h, err)
	}
}

// TestLimitCoversBothMemories fills the kernel with blocks of one size until alloc refuses: with
// tiny blocks the index outgrows the data, with large ones the data does; either way the two
// memories together end within the limit given to New (the Store's per-memory limit is larger and
// would let each grow to it), and the Go side refuses too.
func TestLimitCoversBothMemories(t *testing.T) {
	const limit = 8 * wasmPage
	for _, size := range []uint64{1, 8, 1000, 3 * wasmPage, 7 * wasmPage} {
		t.Run(fmt.Sprintf("%d-byte blocks", size), func(t *testing.T) {
			e := newEnvWith(t, getEngine(t), testMemLimit)
			e.k.limitPages = limit / wasmPage
			n := e.words("fill", word(size))[0]
			total := e.k.mem.Size(e.store) + e.k.idx.Size(e.store)
			t.Logf("%d blocks; data %d pages, index %d pages", n, e.k.mem.Size(e.store), e.k.idx.Size(e.store))
			if total > limit/wasmPage {
				t.Fatalf("the kernel's memories hold %d pages; the limit is %d", total, limit/wasmPage)
			}
			if size < 7*wasmPage && n == 0 {
				t.Fatalf("no %d-byte block fitted in %d pages", size, limit/wasmPage)
			}
			if h, err := e.k.Alloc(e.store, make([]byte, limit)); h != 0 || !errors.Is(err, ErrOutOfMemory) {
				t.Errorf("Alloc past the limit = %#x, %v, want ErrOutOfMemory", h, err)
			}
		})
	}
	if _, err := New(wasmtime.NewStore(getEngine(t).engine), getEngine(t).kernel, MinLimit-1); err == nil {
		t.Errorf("New with a limit below two pages succeeded")
	}
}

func TestBlocksDieAtBeginCall(t *testing.T) {
	e := newEnv(t, testMemLimit)
	h := e.words("keep", nil)[0]
	if h <= 0x10 {
		t.Fatalf("keep returned %#x", h)
	}
	if got := e.words("length_of", word(h)); got[0] != 0 {
		t.Errorf("length of the previous call's block = %d, want 0", got[0])
	}
	r := e.call("load_of", word(h))
	want := fmt.Sprintf("extism kernel: load_u64 at address %#x (8 bytes) is outside every live block", h)
	if r.err == nil || causedBy(r.err) != want {
		t.Errorf("load_u64 of the previous call's block: %v, want %q", r.err, want)
	}
	if err := e.k.BeginCall(e.store, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.Read(e.store, h); err == nil {
		t.Errorf("Read of the previous call's block succeeded")
	}
	if out, msg, failed, err := e.k.Output(e.store); out != nil || msg != "" || failed || err != nil {
		t.Errorf("Output after BeginCall = %q %q %v %v, want nothing", out, msg, failed, err)
	}
}

func TestHostFunctions(t *testing.T) {
	e := newEnv(t, testMemLimit)
	for _, export := range []string{"host", "host_caller"} {
		for _, in := range []string{"hello, kernel", "x", strings.Repeat("abcdefgh", 5000)} {
			e.hostErr = nil
			r := e.call(export, []byte(in))
			if e.hostErr != nil || r.err != nil || r.outErr != nil {
				t.Fatalf("%s: host=%v err=%v outErr=%v", export, e.hostErr, r.err, r.outErr)
			}
			if want := strings.ToUpper(in); string(r.out) != want {
				t.Fatalf("%s(%.20q) = %.20q, want %.20q", export, in, r.out, want)
			}
		}
	}
	// An empty input has input_offset 0, which the host cannot Read.
	r := e.call("host", nil)
	if r.err == nil || !strings.Contains(causedBy(r.err), "handle 0x0 is not a live block") {
		t.Errorf("host with empty input: %v", r.err)
	}
}

func TestGoAllocRead(t *testing.T) {
	e := newEnv(t, testMemLimit)
	if err := e.k.BeginCall(e.store, []byte("in")); err != nil {
		t.Fatal(err)
	}
	if h, err := e.k.Alloc(e.store, nil); h != 0 || err != nil {
		t.Errorf("Alloc(nil) = %#x, %v; want 0, nil", h, err)
	}
	var hs []uint64
	for i := 0; i < 300; i++ { // several index pages' worth of growth is tested by "many"
		data := pattern(i*13 + 1)
		h, err := e.k.Alloc(e.store, data)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	for i, h := range hs {
		got, err := e.k.Read(e.store, h)
		if err != nil || !bytes.Equal(got, pattern(i*13+1)) {
			t.Fatalf("Read(%#x): %d bytes, %v", h, len(got), err)
		}
		if _, err := e.k.Read(e.store, h+1); err == nil {
			t.Fatalf("Read(%#x) of an interior address succeeded", h+1)
		}
	}
	for _, h := range []uint64{0, 1, 0x8, 1 << 40, ^uint64(0)} {
		if _, err := e.k.Read(e.store, h); err == nil {
			t.Errorf("Read(%#x) succeeded", h)
		}
	}
	// The guest sees blocks made by Go, and Go sees the guest's frees.
	e.store.SetEpochDeadline(1 << 30)
	n, err := e.k.funcs["length"].Call(e.store, int64(hs[5]))
	if err != nil || n.(int64) != int64(len(pattern(5*13+1))) {
		t.Fatalf("length(Go block) = %v, %v", n, err)
	}
	if _, err := e.k.funcs["free"].Call(e.store, int64(hs[5])); err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.Read(e.store, hs[5]); err == nil {
		t.Errorf("Read of a freed block succeeded")
	}
}

// Define exposes exactly Imports; the kernel's memories and its fault import stay private.
func TestDefine(t *testing.T) {
	e := newEnv(t, testMemLimit)
	for _, name := range Imports {
		if e.linker.Get(e.store, ModuleName, name) == nil {
			t.Errorf("%s::%s not defined", ModuleName, name)
		}
	}
	for _, name := range []string{"memory", "index", "alloc_raw", "reset"} {
		if e.linker.Get(e.store, ModuleName, name) != nil {
			t.Errorf("%s::%s is visible to guests", ModuleName, name)
		}
	}
	if e.linker.Get(e.store, FaultModule, FaultName) != nil {
		t.Errorf("the fault import is visible to guests")
	}
	if len(Imports) != 14 {
		t.Errorf("%d imports", len(Imports))
	}
}

// The Go side never runs kernel code, so it works when the Store's epoch deadline has passed (the
// shim calls BeginCall before setting the next call's deadline) and with fuel metering on before
// any fuel is set.
func TestNoWasmFromGo(t *testing.T) {
	fuelEng, err := newTestEngine(true)
	if err != nil {
		t.Fatal(err)
	}
	for name, te := range map[string]*testEngine{"epoch": getEngine(t), "epoch+fuel": fuelEng} {
		t.Run(name, func(t *testing.T) {
			store := wasmtime.NewStore(te.engine) // no deadline and no fuel set: any wasm would trap
			store.Limiter(testMemLimit, -1, -1, -1, -1)
			k, err := New(store, te.kernel, testMemLimit)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.BeginCall(store, []byte("input")); err != nil {
				t.Fatal(err)
			}
			h, err := k.Alloc(store, []byte("data"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := k.Read(store, h); err != nil || string(got) != "data" {
				t.Fatalf("Read = %q, %v", got, err)
			}
			if out, _, failed, err := k.Output(store); out != nil || failed || err != nil {
				t.Fatalf("Output = %q %v %v", out, failed, err)
			}
		})
	}
	// And with fuel, the guest side works once fuel is set.
	e := newEnvWith(t, fuelEng, testMemLimit)
	if err := e.store.SetFuel(1 << 40); err != nil {
		t.Fatal(err)
	}
	if r := e.call("echo", []byte("fuel")); r.err != nil || string(r.out) != "fuel" {
		t.Fatalf("echo with fuel: %q %v", r.out, r.err)
	}
}
