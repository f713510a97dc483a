package shim

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared/pb"
)

// trapOutOfFuel is the trap code wasmtime reports for exhausted fuel. wasmtime-go v39's
// wasmtime.OutOfFuel constant says 11, but the C enum has ALWAYS_TRAP_ADAPTER at 11 and reports 12.
const trapOutOfFuel = 12

// failure describes the circumstances of a failed call, for classify.
type failure struct {
	export  string
	timeout time.Duration // 0: the call had no deadline
	cause   error         // why the call was interrupted (errCallTimeout, errUnloading), or nil
	exit    *int32        // the status the guest gave proc_exit, if it called it
	limits  storeLimits
	memSize uint64   // guest memory size when the call failed
	stderr  []string // the call's notable stderr lines (see stdio)
}

// classify turns an error from calling a guest export into a GuestError a capsule author can act
// on: what kind of failure it was, in words, with the guest backtrace when there is one.
func classify(err error, f failure) *pb.GuestError {
	var trap *wasmtime.Trap
	var werr *wasmtime.Error
	// A guest that called proc_exit ended the call itself, whatever else was going on. An
	// interrupted call fails however the interruption reached it: an epoch trap while the guest
	// computes, or a trap from a host function (a sleep, an HTTP request) that gave up.
	switch {
	case f.exit != nil:
		return exitError(f.export, *f.exit)
	case errors.Is(f.cause, errUnloading):
		return &pb.GuestError{Kind: pb.GuestError_CANCELLED, Message: fmt.Sprintf("call to %s interrupted: the capsule is unloading", f.export)}
	case errors.Is(f.cause, errCallTimeout):
		g := &pb.GuestError{Kind: pb.GuestError_TIMEOUT, Message: fmt.Sprintf("call to %s hit its time limit of %s and was interrupted (raise [limits] call_timeout, or --timeout for astrid-host call)", f.export, f.timeout)}
		if errors.As(err, &trap) {
			g.Backtrace = backtrace(trap)
		}
		return g
	}
	switch {
	case errors.As(err, &trap) && trap.Code() != nil:
		g := &pb.GuestError{Backtrace: backtrace(trap)}
		switch code := *trap.Code(); code {
		case wasmtime.Interrupt:
			// An epoch increment whose cause was not recorded (it raced the end of the call).
			g.Kind, g.Message = pb.GuestError_TIMEOUT, fmt.Sprintf("call to %s was interrupted", f.export)
		case trapOutOfFuel:
			g.Kind, g.Message = pb.GuestError_OUT_OF_FUEL, fmt.Sprintf("call to %s ran out of fuel ([limits] fuel)", f.export)
		case wasmtime.StackOverflow:
			g.Kind, g.Message = pb.GuestError_STACK_OVERFLOW, fmt.Sprintf("call to %s overflowed the WebAssembly stack (unbounded recursion?)", f.export)
		case wasmtime.UnreachableCodeReached:
			classifyUnreachable(g, f)
		default:
			g.Kind, g.Message = pb.GuestError_TRAP, fmt.Sprintf("call to %s trapped: %s", f.export, trapCodeText(code))
		}
		return g
	case errors.As(err, &werr):
		// A trap raised by a host function (the kernel's bounds checks, for instance) arrives as a
		// wasmtime.Error whose text is "error while executing ...\n\nCaused by:\n    <message>".
		return &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("call to %s trapped: %s", f.export, hostTrapMessage(werr.Error()))}
	default:
		return &pb.GuestError{Kind: pb.GuestError_TRAP, Message: fmt.Sprintf("call to %s failed: %v", f.export, err)}
	}
}

// classifyUnreachable tells apart the reasons a guest executes `unreachable`: a runtime that ran
// out of memory (it says so on stderr, or the memory is at its limit), a panic (a Go or Rust
// guest says so on stderr), and everything else (aborts, hand-written traps).
func classifyUnreachable(g *pb.GuestError, f failure) {
	text := strings.Join(f.stderr, "\n")
	saysOOM := strings.Contains(text, "out of memory") || strings.Contains(text, "memory allocation of")
	atLimit := f.limits.guestMemory > 0 && f.memSize+wasmPageBytes > f.limits.guestMemory
	switch {
	case saysOOM || (len(f.stderr) == 0 && atLimit):
		g.Kind = pb.GuestError_OUT_OF_MEMORY
		g.Message = fmt.Sprintf("call to %s ran out of memory: the guest reached its limit of %s", f.export, f.limits.guestShare())
	case len(f.stderr) > 0:
		g.Kind = pb.GuestError_PANIC
		g.Message = fmt.Sprintf("call to %s panicked: %s", f.export, panicLine(f.stderr))
	default:
		g.Kind = pb.GuestError_UNREACHABLE
		g.Message = fmt.Sprintf("call to %s trapped: wasm `unreachable` instruction executed", f.export)
	}
}

// wasmPageBytes is the size of one WebAssembly page; a memory within one page of its limit could
// not grow any more.
const wasmPageBytes = 64 << 10

// panicLine picks the line that says what the panic was.
func panicLine(lines []string) string {
	for _, l := range lines {
		for _, p := range []string{"panic: ", "fatal error: "} {
			if i := strings.Index(l, p); i >= 0 {
				return strings.TrimSpace(l[i+len(p):])
			}
		}
		if strings.Contains(l, "panicked at") {
			return strings.TrimSpace(l)
		}
	}
	return "see the capsule's stderr"
}

func hostTrapMessage(text string) string {
	if i := strings.Index(text, "Caused by:"); i >= 0 {
		rest := strings.TrimSpace(text[i+len("Caused by:"):])
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		return strings.TrimSpace(rest)
	}
	if j := strings.IndexByte(text, '\n'); j >= 0 {
		return text[:j]
	}
	return text
}

func trapCodeText(code wasmtime.TrapCode) string {
	switch code {
	case wasmtime.MemoryOutOfBounds:
		return "out-of-bounds memory access"
	case wasmtime.HeapMisaligned:
		return "misaligned atomic memory access"
	case wasmtime.TableOutOfBounds:
		return "out-of-bounds table access"
	case wasmtime.IndirectCallToNull:
		return "indirect call to a null table entry"
	case wasmtime.BadSignature:
		return "indirect call signature mismatch"
	case wasmtime.IntegerOverflow:
		return "integer overflow"
	case wasmtime.IntegerDivisionByZero:
		return "integer division by zero"
	case wasmtime.BadConversionToInteger:
		return "invalid conversion to integer"
	default:
		return fmt.Sprintf("trap code %d", code)
	}
}

// backtrace renders the guest frames of a trap, innermost first.
func backtrace(trap *wasmtime.Trap) string {
	var b strings.Builder
	for i, fr := range trap.Frames() {
		name := fmt.Sprintf("<func %d>", fr.FuncIndex())
		if n := fr.FuncName(); n != nil {
			name = *n
		}
		fmt.Fprintf(&b, "#%d %s (module offset 0x%x)\n", i, name, fr.ModuleOffset())
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
