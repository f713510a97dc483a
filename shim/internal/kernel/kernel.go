// Package kernel is the Extism-compatible kernel of the shim: the memory a guest and the host
// exchange data in (docs/abi.md#extismhostenv-the-kernel: the `extism:host/env` functions alloc, free, length, load_*,
// store_*, input_*, output_set and error_set).
//
// A guest moves data 8 bytes per kernel call, so the kernel is a small WebAssembly module of our
// own (kernel.wat), instantiated next to the guest in the same Store and linked to the guest's
// imports: loads and stores never cross into Go. The Go side reads and writes the kernel's
// memories directly and never executes kernel code, so BeginCall, Output, Alloc and Read work
// whatever the Store's epoch deadline or fuel is (the shim sets those after BeginCall).
//
// A handle is the offset of a block's first byte in the kernel's data memory; 0 means none.
// Blocks live for one call: BeginCall forgets all of them. See kernel.wat for the layout.
package kernel

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// ModuleName is the import module guests use for kernel functions.
const ModuleName = "extism:host/env"

// Imports lists the function names the kernel provides under ModuleName.
var Imports = []string{
	"alloc", "free", "length", "length_unsafe",
	"load_u8", "load_u64", "store_u8", "store_u64",
	"input_length", "input_offset", "input_load_u8", "input_load_u64",
	"output_set", "error_set",
}

// FaultModule is the import module of everything the kernel module imports, which New provides
// and guests never see: the function FaultName, which raises the kernel's traps with a readable
// message, its memories, the table of bulk copies and whether a guest memory is bound.
const (
	FaultModule = "astrid:kernel"
	FaultName   = "fault"
)

// CopyImports maps the bulk-copy functions a guest imports (under the module the shim gives
// DefineCopies) to the kernel's exports that serve them: see "bulk copies" in kernel.wat.
var CopyImports = map[string]string{
	"astrid_kernel_read":  "kernel_read",
	"astrid_kernel_write": "kernel_write",
}

//go:embed kernel.wat
var kernelWAT string

var (
	wasmOnce  sync.Once
	kernelBin []byte
	wasmErr   error
)

// Layout of the state words and the block index in the "index" memory; see kernel.wat.
const (
	offLoadCache  = 0
	offStoreCache = 24
	offInStart    = 48
	offInLen      = 56
	offInLen8     = 64
	offTop        = 72
	offCount      = 80
	offOutH       = 88
	offOutN       = 96
	offOutSet     = 104
	offErrH       = 112
	offLimit      = 120 // pages $mem and $idx may hold together
	stateSize     = 128 // entries start here
	entrySize     = 16  // +0 u64 start, +8 u32 length, +12 u32 live
	firstBlock    = 16  // the first block's offset in the data memory; keeps handles non-zero
	maxEnd        = 1 << 32
	wasmPage      = 64 << 10
)

// Compile compiles the kernel for an engine; do it once per engine and share the module.
// The kernel uses two memories, so the engine must allow multi-memory (wasmtime's default).
func Compile(engine *wasmtime.Engine) (*wasmtime.Module, error) {
	wasmOnce.Do(func() { kernelBin, wasmErr = wasmtime.Wat2Wasm(kernelWAT) })
	if wasmErr != nil {
		return nil, fmt.Errorf("extism kernel: assemble kernel.wat: %w", wasmErr)
	}
	m, err := wasmtime.NewModule(engine, kernelBin)
	if err != nil {
		return nil, fmt.Errorf("extism kernel: compile (the engine must allow multi-memory): %w", err)
	}
	return m, nil
}

// Kernel is one instance of the kernel in one Store. Not safe for concurrent use (the Store isn't
// either).
type Kernel struct {
	module   *wasmtime.Module
	instance *wasmtime.Instance
	mem      *wasmtime.Memory // block data; handles are offsets in it
	idx      *wasmtime.Memory // state words and the block index
	copies   *wasmtime.Table  // the bulk copies the kernel's kernel_read and kernel_write call
	fault    *wasmtime.Func
	funcs    map[string]*wasmtime.Func
	// limitPages is the most 64 KiB pages mem and idx may hold together (see New).
	limitPages uint64
}

// MinLimit is the smallest limit New accepts: the two pages the kernel's memories start with.
const MinLimit = 2 * wasmPage

// New instantiates the kernel module in store. limit is the most bytes the kernel's two memories
// (block data and block index) may hold together, rounded down to whole 64 KiB pages; at least
// MinLimit. Both the kernel's own alloc and the Go side's Alloc and BeginCall refuse to grow past
// it, whatever the Store's per-memory limit would allow, so the kernel's share of a capsule's
// memory is exact.
func New(store *wasmtime.Store, module *wasmtime.Module, limit uint64) (*Kernel, error) {
	if limit < MinLimit {
		return nil, fmt.Errorf("extism kernel: a memory limit of %d bytes is less than the %d bytes (two pages) the kernel starts with", limit, uint64(MinLimit))
	}
	i64 := wasmtime.NewValType(wasmtime.KindI64)
	faultType := wasmtime.NewFuncType(
		[]*wasmtime.ValType{wasmtime.NewValType(wasmtime.KindI32), i64, i64, i64, i64}, nil)
	k := &Kernel{module: module, funcs: make(map[string]*wasmtime.Func, len(Imports)), limitPages: limit / wasmPage}
	k.fault = wasmtime.NewFunc(store, faultType, func(_ *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
		return nil, wasmtime.NewTrap(faultMessage(args[0].I32(), uint64(args[1].I64()), uint64(args[2].I64()),
			uint64(args[3].I64()), args[4].I64()))
	})
	pageType, err := wasmtime.NewMemoryType(1, false, 0, false)
	if err != nil {
		return nil, fmt.Errorf("extism kernel: memory type: %w", err)
	}
	for _, m := range []**wasmtime.Memory{&k.mem, &k.idx} {
		if *m, err = wasmtime.NewMemory(store, pageType); err != nil {
			return nil, fmt.Errorf("extism kernel: create a memory: %w", err)
		}
	}
	k.copies, err = wasmtime.NewTable(store, wasmtime.NewTableType(wasmtime.NewValType(wasmtime.KindFuncref), copySlots, true, copySlots), wasmtime.ValFuncref(nil))
	if err != nil {
		return nil, fmt.Errorf("extism kernel: create the table of copies: %w", err)
	}
	k.reset(store) // the state words, before anything runs: the module has no data segment
	// The kernel instance: its "guest" memory is its own data memory, which the copies it
	// makes (before BindGuest) never touch: they fault first.
	if k.instance, err = k.instantiate(store, k.mem, false); err != nil {
		return nil, err
	}
	for _, name := range Imports {
		f := k.instance.GetFunc(store, name)
		if f == nil {
			return nil, fmt.Errorf("extism kernel: the kernel module does not export %s", name)
		}
		k.funcs[name] = f
	}
	if err := k.setCopies(store, k.instance); err != nil {
		return nil, err
	}
	return k, nil
}

// copySlots is the size of the table of bulk copies: copy_out (astrid_kernel_read), copy_in
// (astrid_kernel_write).
const copySlots = 2

// instantiate makes an instance of the kernel module on k's memories and table, with guest as its
// "guest" memory; hasGuest says whether the bulk copies may use it.
func (k *Kernel) instantiate(store *wasmtime.Store, guest *wasmtime.Memory, hasGuest bool) (*wasmtime.Instance, error) {
	flag := int32(0)
	if hasGuest {
		flag = 1
	}
	has, err := wasmtime.NewGlobal(store, wasmtime.NewGlobalType(wasmtime.NewValType(wasmtime.KindI32), false), wasmtime.ValI32(flag))
	if err != nil {
		return nil, fmt.Errorf("extism kernel: create a global: %w", err)
	}
	inst, err := wasmtime.NewInstance(store, k.module, []wasmtime.AsExtern{k.fault, k.mem, k.idx, guest, k.copies, has})
	if err != nil {
		return nil, fmt.Errorf("extism kernel: instantiate: %w", err)
	}
	return inst, nil
}

// setCopies points the table of bulk copies at inst's copy_out and copy_in.
func (k *Kernel) setCopies(store *wasmtime.Store, inst *wasmtime.Instance) error {
	for i, name := range []string{"copy_out", "copy_in"} {
		f := inst.GetFunc(store, name)
		if f == nil {
			return fmt.Errorf("extism kernel: the kernel module does not export %s", name)
		}
		if err := k.copies.Set(store, uint64(i), wasmtime.ValFuncref(f)); err != nil {
			return fmt.Errorf("extism kernel: set %s: %w", name, err)
		}
	}
	return nil
}

// BindGuest gives the bulk copies the guest's linear memory (its export GuestMemory), once the
// guest is instantiated: a second instance of the kernel module, on the same memories, that
// imports it. Until then, and if it fails (a guest memory that is 64-bit or shared, which the
// module cannot import), astrid_kernel_read and astrid_kernel_write trap the guest's call saying
// that no guest memory is bound.
func (k *Kernel) BindGuest(store *wasmtime.Store, guest *wasmtime.Memory) error {
	inst, err := k.instantiate(store, guest, true)
	if err != nil {
		return fmt.Errorf("extism kernel: bind the guest's memory for bulk copies: %w", err)
	}
	return k.setCopies(store, inst)
}

// MemorySize is the size in bytes of the kernel's two memories together; at most the limit
// given to New.
func (k *Kernel) MemorySize(store wasmtime.Storelike) uint64 {
	return uint64(k.mem.DataSize(store)) + uint64(k.idx.DataSize(store))
}

// Define defines the kernel's guest-facing functions (exactly Imports) in linker under
// ModuleName. The kernel's memories are not defined: guests cannot see them.
func (k *Kernel) Define(store *wasmtime.Store, linker *wasmtime.Linker) error {
	for _, name := range Imports {
		if err := linker.Define(store, ModuleName, name, k.funcs[name]); err != nil {
			return fmt.Errorf("extism kernel: define %s::%s: %w", ModuleName, name, err)
		}
	}
	return nil
}

// DefineCopies defines the bulk-copy functions (the keys of CopyImports) in linker under module.
func (k *Kernel) DefineCopies(store *wasmtime.Store, linker *wasmtime.Linker, module string) error {
	for name, export := range CopyImports {
		f := k.instance.GetFunc(store, export)
		if f == nil {
			return fmt.Errorf("extism kernel: the kernel module does not export %s", export)
		}
		if err := linker.Define(store, module, name, f); err != nil {
			return fmt.Errorf("extism kernel: define %s::%s: %w", module, name, err)
		}
	}
	return nil
}

// BeginCall resets the kernel (all blocks from the previous call become invalid), allocates the
// input block and copies input into it. An empty input gives input_length 0 and input_offset 0.
// It fails only when the input does not fit in the kernel's memory limit (see New).
func (k *Kernel) BeginCall(store *wasmtime.Store, input []byte) error {
	k.reset(store)
	if len(input) == 0 {
		return nil
	}
	h, st, mem, err := k.allocRaw(store, uint64(len(input)))
	if err != nil {
		return err
	}
	n := uint64(len(input))
	put64(st, offInStart, h)
	put64(st, offInLen, n)
	put64(st, offInLen8, len8(n))
	copy(mem[h:], input)
	return nil
}

// reset forgets every block and the output and error of the previous call, and rewrites the
// memory limit. Memory is not shrunk (WebAssembly memories cannot shrink), so the next calls
// reuse it.
func (k *Kernel) reset(store wasmtime.Storelike) {
	st := k.idx.UnsafeData(store)
	clear(st[:stateSize])
	put64(st, offTop, firstBlock)
	put64(st, offLimit, k.limitPages)
}

// room reports whether mem and idx may grow by pages more pages together ($room of kernel.wat).
func (k *Kernel) room(s wasmtime.Storelike, pages uint64) bool {
	return k.mem.Size(s)+k.idx.Size(s)+pages <= k.limitPages
}

// Output returns a copy of the call's output bytes (nil if output_set was never called; empty,
// not nil, after output_set(0, 0)), and errMsg/failed when error_set was called with a live
// block. Call it after the guest export returned. err reports an output or error block the
// guest freed after setting it.
func (k *Kernel) Output(store *wasmtime.Store) (output []byte, errMsg string, failed bool, err error) {
	view, errMsg, failed, err := k.OutputView(store)
	if view != nil {
		output = append(make([]byte, 0, len(view)), view...)
	}
	return output, errMsg, failed, err
}

// OutputView is Output without the copy: output is the kernel's own memory, valid only until the
// Store runs again or its memories grow (the next BeginCall, Alloc or call into the Store). The
// shim sends it before it lets go of the Store, so a call's output is copied once, into the
// answer, however large it is — and its length is known (and can be refused) before anything is
// copied.
func (k *Kernel) OutputView(store *wasmtime.Store) (output []byte, errMsg string, failed bool, err error) {
	st := k.idx.UnsafeData(store)
	if eh := get64(st, offErrH); eh != 0 {
		failed = true
		msg, rerr := k.read(store, eh)
		if rerr != nil {
			msg = []byte(fmt.Sprintf("(the guest freed the block %#x holding its error message)", eh))
		}
		errMsg = strings.ToValidUTF8(string(msg), "\uFFFD")
	}
	if get64(st, offOutSet) == 0 {
		return nil, errMsg, failed, nil
	}
	h, n := get64(st, offOutH), get64(st, offOutN)
	if h == 0 {
		return []byte{}, errMsg, failed, nil
	}
	start, length, ok := k.lookup(store, h)
	if !ok || start != h {
		return nil, errMsg, failed, fmt.Errorf("extism kernel: the output block %#x was freed after output_set", h)
	}
	if n > length {
		return nil, errMsg, failed, fmt.Errorf("extism kernel: the output block %#x is %d bytes, shorter than the %d set by output_set", h, length, n)
	}
	return k.mem.UnsafeData(store)[h : h+n : h+n], errMsg, failed, nil
}

// Alloc allocates a block holding a copy of data and returns its handle (0 for empty data); for
// host functions that return data to the guest. It fails when the kernel memory cannot grow.
//
// Alloc and Read only touch the kernel's memories (never run kernel code), so calling them with
// the Store from inside a host function works; AllocCaller and ReadCaller do the same through the
// host function's Caller, which is the form wasmtime documents for use during a call.
func (k *Kernel) Alloc(store *wasmtime.Store, data []byte) (uint64, error) {
	return k.alloc(store, data)
}

// Read copies a live block's bytes out (error for 0, an unknown or a freed handle).
func (k *Kernel) Read(store *wasmtime.Store, handle uint64) ([]byte, error) {
	return k.read(store, handle)
}

// AllocCaller is Alloc through the Caller of a running host function.
func (k *Kernel) AllocCaller(caller *wasmtime.Caller, data []byte) (uint64, error) {
	return k.alloc(caller, data)
}

// ReadCaller is Read through the Caller of a running host function.
func (k *Kernel) ReadCaller(caller *wasmtime.Caller, handle uint64) ([]byte, error) {
	return k.read(caller, handle)
}

// ReadCallerMax is ReadCaller for a block of at most limit bytes: the length is checked before
// anything is copied, and a longer block is refused with tooLarge(length). Handle 0 reads as
// empty: it is what alloc(0) returns, so it is how Extism PDKs pass an empty argument.
func (k *Kernel) ReadCallerMax(caller *wasmtime.Caller, handle uint64, limit int, tooLarge func(n int) error) ([]byte, error) {
	if handle == 0 {
		return []byte{}, nil
	}
	st, mem := k.views(caller)
	start, n, ok := lookupIn(st, handle)
	if !ok || start != handle {
		return nil, fmt.Errorf("extism kernel: handle %#x is not a live block", handle)
	}
	if n > uint64(limit) {
		return nil, tooLarge(int(n))
	}
	return append(make([]byte, 0, n), mem[handle:handle+n]...), nil
}

// ViewCaller is ReadCaller without the copy, for handles blocks: the blocks' bytes in the
// kernel's memory, appended to dst (which may be a caller's array, so that nothing is allocated),
// valid only until the guest runs again or the memory grows (the caller copies what it keeps).
// The memories are looked up once for all of them (each look-up is a call into wasmtime), which
// is what makes it cheaper than reading the blocks one by one.
func (k *Kernel) ViewCaller(caller *wasmtime.Caller, dst [][]byte, handles ...uint64) ([][]byte, error) {
	st, mem := k.memoryViews(caller)
	for _, h := range handles {
		start, n, ok := lookupIn(st, h)
		if !ok || start != h {
			return nil, fmt.Errorf("extism kernel: handle %#x is not a live block", h)
		}
		dst = append(dst, mem[h:h+n:h+n])
	}
	return dst, nil
}

func (k *Kernel) alloc(s wasmtime.Storelike, data []byte) (uint64, error) {
	if len(data) == 0 {
		return 0, nil
	}
	h, _, mem, err := k.allocRaw(s, uint64(len(data)))
	if err != nil {
		return 0, err
	}
	copy(mem[h:], data)
	return h, nil
}

func (k *Kernel) read(s wasmtime.Storelike, h uint64) ([]byte, error) {
	st, mem := k.views(s)
	start, n, ok := lookupIn(st, h)
	if !ok || start != h {
		return nil, fmt.Errorf("extism kernel: handle %#x is not a live block", h)
	}
	out := make([]byte, n)
	copy(out, mem[h:h+n])
	return out, nil
}

// views returns the kernel's index and data memories as byte slices through s: with one call
// into C through a host function's Caller (memoryViews), with the Store's own look-ups
// otherwise. They are valid until the memories grow or the guest runs again.
func (k *Kernel) views(s wasmtime.Storelike) (idx, mem []byte) {
	if c, ok := s.(*wasmtime.Caller); ok {
		return k.memoryViews(c)
	}
	return k.idx.UnsafeData(s), k.mem.UnsafeData(s)
}

// ErrOutOfMemory is returned (wrapped) when a block does not fit in the kernel memory.
var ErrOutOfMemory = errors.New("extism kernel: out of memory")

// allocRaw is $alloc_raw of kernel.wat: a new block of n >= 1 bytes, not zeroed. It returns the
// memories' views too (see views), as they are once the block is made.
func (k *Kernel) allocRaw(s wasmtime.Storelike, n uint64) (start uint64, st, mem []byte, err error) {
	st, mem = k.views(s)
	start = get64(st, offTop)
	end := start + n
	if n > 0xffffffff || end > maxEnd {
		return 0, nil, nil, fmt.Errorf("%w: a %d-byte block does not fit in 4 GiB", ErrOutOfMemory, n)
	}
	count := get64(st, offCount)
	e := stateSize + count*entrySize
	grown := false
	if e+entrySize > uint64(len(st)) {
		if !k.room(s, 1) {
			return 0, nil, nil, fmt.Errorf("%w: the block index cannot grow: the kernel's memories hold %s, their limit", ErrOutOfMemory, plural(k.limitPages, "page"))
		}
		if _, err := k.idx.Grow(s, 1); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: grow the block index: %v", ErrOutOfMemory, firstLine(err))
		}
		grown = true
	}
	if have := uint64(len(mem)); end > have {
		pages := (end - have + wasmPage - 1) / wasmPage
		if !k.room(s, pages) {
			return 0, nil, nil, fmt.Errorf("%w: a %d-byte block needs %s more; the kernel's memories may hold %s (%d bytes) together",
				ErrOutOfMemory, n, plural(pages, "page"), plural(k.limitPages, "page"), k.limitPages*wasmPage)
		}
		if _, err := k.mem.Grow(s, pages); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: grow to %d bytes for a %d-byte block: %v", ErrOutOfMemory, end, n, firstLine(err))
		}
		grown = true
	}
	if grown {
		st, mem = k.views(s)
	}
	put64(st, int(e), start)
	binary.LittleEndian.PutUint32(st[e+8:], uint32(n))
	binary.LittleEndian.PutUint32(st[e+12:], 1)
	put64(st, offCount, count+1)
	put64(st, offTop, (end+7)&^7)
	return start, st, mem, nil
}

// lookup is $find of kernel.wat: the block with the greatest start <= addr, if it is live and
// holds addr.
func (k *Kernel) lookup(s wasmtime.Storelike, addr uint64) (start, length uint64, ok bool) {
	return lookupIn(k.idx.UnsafeData(s), addr)
}

// lookupIn is lookup in st, the block index's memory.
func lookupIn(st []byte, addr uint64) (start, length uint64, ok bool) {
	count := get64(st, offCount)
	lo, hi := uint64(0), count
	for lo < hi {
		mid := (lo + hi) / 2
		if get64(st, int(stateSize+mid*entrySize)) <= addr {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, 0, false
	}
	e := stateSize + (lo-1)*entrySize
	start = get64(st, int(e))
	length = uint64(binary.LittleEndian.Uint32(st[e+8:]))
	live := binary.LittleEndian.Uint32(st[e+12:]) != 0
	if !live || addr-start >= length {
		return 0, 0, false
	}
	return start, length, true
}

func faultMessage(code int32, a, b, c uint64, d int64) string {
	const p = "extism kernel: "
	switch code {
	case 1, 2, 3, 4:
		name := [...]string{1: "load_u8", 2: "load_u64", 3: "store_u8", 4: "store_u64"}[code]
		msg := fmt.Sprintf("%s%s at address %#x (%s) is outside every live block", p, name, a, plural(b, "byte"))
		switch {
		case c == 0:
		case d < 0:
			msg += fmt.Sprintf(" (block %#x was freed)", c)
		default:
			msg += fmt.Sprintf(" (it runs past the end of the %d-byte block %#x)", d, c)
		}
		return msg
	case 5:
		return fmt.Sprintf("%sinput_load_u8: offset %d is past the end of the %d-byte input", p, a, c)
	case 6:
		return fmt.Sprintf("%sinput_load_u64: offset %d (8 bytes) is past the end of the %d-byte input", p, a, c)
	case 7:
		return fmt.Sprintf("%soutput_set: handle %#x is not a live block", p, a)
	case 8:
		return fmt.Sprintf("%soutput_set: length %d exceeds the %d-byte block %#x", p, b, c, a)
	case 9:
		return fmt.Sprintf("%serror_set: handle %#x is not a live block", p, a)
	case 10, 11, 12, 13, 14, 15:
		return copyFault(code, a, b, c, d)
	}
	return fmt.Sprintf("%sfault %d (%#x, %#x, %#x, %#x)", p, code, a, b, c, d)
}

func plural(n uint64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func len8(n uint64) uint64 {
	if n < 8 {
		return 0
	}
	return n - 7
}

func get64(b []byte, off int) uint64    { return binary.LittleEndian.Uint64(b[off:]) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
