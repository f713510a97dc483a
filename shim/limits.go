package shim

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shim/internal/kernel"
)

// A Store holds at most three instances: the kernel, the guest, and the kernel's second instance
// that serves the bulk copies (kernel.BindGuest), made after the guest; nothing may add more.
// The kernel's memories and its table of copies are made by the shim (kernel.New), which the
// Store does not count: the counts are what modules define. The kernel module defines none; a
// guest may define one linear memory and one table, as every Extism PDK and WASI toolchain does.
const (
	storeInstances = 3
	storeMemories  = 1
	storeTables    = 1
	// tableElementBytes is what one table element costs the shim: wasmtime keeps a funcref or
	// externref table as an array of at most 8-byte pointers.
	tableElementBytes = 8
)

// storeLimits shares a capsule's [limits] memory among everything in its Store that can grow,
// so that their total never exceeds it (wasmtime-go can only limit each memory and each table
// on its own, never their sum):
//
//   - the guest's linear memory: three quarters, in whole 64 KiB pages (48 MiB of the default
//     64 MiB), since that is what a capsule author means by memory;
//   - the kernel's two memories together: three sixteenths, in whole pages (12 MiB by default:
//     room for a 10 MiB input); the kernel enforces it (kernel.New);
//   - the guest's table: memory/128 elements of 8 bytes, a sixteenth (524,288 elements by default,
//     some ten times what a large Go guest needs).
//
// The Store also refuses a fourth instance, a second memory and a second table that a module
// defines, so none of this can be multiplied.
type storeLimits struct {
	total         uint64 // [limits] memory
	guestMemory   uint64 // bytes of the guest's linear memory
	kernelMemory  uint64 // bytes of the kernel's two memories together
	tableElements uint64 // elements of the guest's table
}

// limitsFor shares memory, a capsule's [limits] memory, as storeLimits says.
func limitsFor(memory uint64) storeLimits {
	return storeLimits{
		total:         memory,
		guestMemory:   memory / 4 * 3 &^ (wasmPageBytes - 1),
		kernelMemory:  memory / 16 * 3 &^ (wasmPageBytes - 1),
		tableElements: memory / 16 / tableElementBytes,
	}
}

// check reports a [limits] memory too small to share: the kernel starts with two pages and the
// guest needs at least one.
func (l storeLimits) check() error {
	if l.kernelMemory < kernel.MinLimit || l.guestMemory < wasmPageBytes {
		return fmt.Errorf("a memory limit of %d bytes is too small: the kernel needs at least %d bytes (three sixteenths of the limit) and the guest one 64 KiB page (three quarters of it)",
			l.total, uint64(kernel.MinLimit))
	}
	return nil
}

// apply sets the limits on a fresh Store. The per-memory limit is the guest's share; the kernel's
// memories are smaller (kernel.New bounds their sum).
func (l storeLimits) apply(store *wasmtime.Store) {
	store.Limiter(int64(l.guestMemory), int64(l.tableElements), storeInstances, storeTables, storeMemories)
}

// goMemLimit is the GOMEMLIMIT a guest's environment holds: three quarters of its linear memory,
// in bytes. A Go guest's runtime reads it at start and collects harder as its heap nears it.
// Without it the runtime knows no limit: under load a wasm Go heap was seen growing drain after
// drain with its collections unfinished (the guest holding under 1 MiB live) until memory.grow
// failed at the guest's limit and the call ended out of memory (BenchmarkBusThroughput under
// perf, 2 runs in 23). The quarter left is for what the runtime does not count (data, the
// wasm stack). Other languages' runtimes ignore the variable.
func (l storeLimits) goMemLimit() string {
	return strconv.FormatUint(l.guestMemory/4*3, 10)
}

// guestShare describes the guest's memory limit for an error message.
func (l storeLimits) guestShare() string {
	return fmt.Sprintf("%s (three quarters of [limits] memory, %s)", formatBytes(l.guestMemory), formatBytes(l.total))
}

// instantiateError explains why instantiating the guest failed when the Store's limits refused
// it, naming the limit; other errors are returned with their first line.
func (l storeLimits) instantiateError(err error) error {
	text := firstLine(err.Error())
	var n uint64
	switch {
	case strings.Contains(text, "memory count too high"):
		return fmt.Errorf("instantiate: the module defines more than one linear memory; a capsule may have one (of at most %s) (%s)", l.guestShare(), text)
	case strings.Contains(text, "table count too high"):
		return fmt.Errorf("instantiate: the module defines more than one table; a capsule may have one (of at most %d elements) (%s)", l.tableElements, text)
	case strings.Contains(text, "instance count too high"):
		return fmt.Errorf("instantiate: a capsule's Store holds the kernel (two instances) and the guest and no other instance (%s)", text)
	case scan(text, "memory minimum size of %d pages exceeds memory limits", &n):
		return fmt.Errorf("instantiate: the module's memory starts at %d pages (%s), more than the guest's limit of %s", n, formatBytes(n*wasmPageBytes), l.guestShare())
	case scan(text, "table minimum size of %d elements exceeds table limits", &n):
		return fmt.Errorf("instantiate: the module's table starts with %d elements, more than the limit of %d ([limits] memory / 128, a sixteenth of it at 8 bytes an element)", n, l.tableElements)
	}
	return fmt.Errorf("instantiate: %s", text)
}

// scan reports whether text is format with one number, stored in n.
func scan(text, format string, n *uint64) bool {
	_, err := fmt.Sscanf(text, format, n)
	return err == nil
}

// firstLine is the first line of a wasmtime error (the rest is a Rust stack backtrace).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
