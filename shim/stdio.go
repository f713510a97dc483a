package shim

import (
	"bytes"
	"encoding/binary"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/astrid-go/astrid/shared/pb"
)

// MaxLogLineBytes caps one log line of a capsule: 64 KiB, upstream's MAX_LOG_MESSAGE_LEN. Longer
// lines are cut there and end with a marker saying so.
const MaxLogLineBytes = 64 << 10

// maxNotableLines is how many of a call's notable stderr lines are kept to explain a trap: a Go
// guest's panic message, a Rust panic, or a runtime's out-of-memory report arrive on stderr just
// before the guest executes `unreachable` (and a Go runtime then dumps every goroutine).
const maxNotableLines = 8

// notableMarkers are the stderr fragments that say why a guest is about to trap.
var notableMarkers = []string{"panic: ", "fatal error: ", "panicked at", "out of memory", "memory allocation of"}

// WASI errno values used by fd_write (wasi_snapshot_preview1).
const (
	wasiErrnoSuccess = 0
	wasiErrnoBadf    = 8
	wasiErrnoFault   = 21
)

// stdio turns a guest's WASI stdout and stderr into log lines of the capsule. Writes are captured
// synchronously in fd_write (never through the shim's own fd 1, which is go-plugin's handshake
// channel), so that by the time a call returns every byte it wrote has been seen. The lines go to
// the logSink, which escapes them and gathers consecutive stderr lines into one block (a failed
// call's block goes with its error).
type stdio struct {
	emit    func(level pb.LogEntry_Level, source, line string)
	partial [3][]byte // unterminated line per fd (1 stdout, 2 stderr)
	notable []string  // the current call's stderr lines that explain a trap, oldest first
}

func newStdio(emit func(level pb.LogEntry_Level, source, line string)) *stdio {
	return &stdio{emit: emit}
}

// beginCall forgets the previous call's notable lines.
func (s *stdio) beginCall() { s.notable = s.notable[:0] }

// notableStderr returns the current call's stderr lines that explain a trap, oldest first.
func (s *stdio) notableStderr() []string { return s.notable }

// write appends bytes written to fd (1 or 2) and emits every completed line.
func (s *stdio) write(fd int32, p []byte) {
	for len(p) > 0 {
		nl := bytes.IndexByte(p, '\n')
		if nl < 0 {
			room := MaxLogLineBytes - len(s.partial[fd])
			if len(p) <= room {
				s.partial[fd] = append(s.partial[fd], p...)
				return
			}
			s.partial[fd] = append(s.partial[fd], p[:room]...)
			s.line(fd, true)
			p = p[room:]
			continue
		}
		chunk := p[:nl]
		room := MaxLogLineBytes - len(s.partial[fd])
		cut := len(chunk) > room
		if cut {
			chunk = chunk[:room]
		}
		s.partial[fd] = append(s.partial[fd], chunk...)
		s.line(fd, cut)
		p = p[nl+1:]
	}
}

// flush emits unterminated lines; called when a call ends so nothing waits for a newline.
func (s *stdio) flush() {
	for fd := int32(1); fd <= 2; fd++ {
		if len(s.partial[fd]) > 0 {
			s.line(fd, false)
		}
	}
}

func (s *stdio) line(fd int32, cut bool) {
	text := strings.TrimSuffix(string(s.partial[fd]), "\r")
	s.partial[fd] = s.partial[fd][:0]
	if cut {
		text += " …[line cut at 64 KiB]"
	}
	if fd == 2 {
		if len(s.notable) < maxNotableLines && containsAny(text, notableMarkers) {
			s.notable = append(s.notable, text)
		}
		s.emit(pb.LogEntry_WARN, "stderr", text)
		return
	}
	s.emit(pb.LogEntry_INFO, "stdout", text)
}

// define shadows WASI's fd_write in linker: fds 1 and 2 go to s, every other fd is EBADF (the
// guest has no preopened files, so there is nothing else it could legitimately write to).
func (s *stdio) define(linker *wasmtime.Linker) error {
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	return linker.FuncNew("wasi_snapshot_preview1", "fd_write", ty,
		func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			return []wasmtime.Val{wasmtime.ValI32(s.fdWrite(c, args[0].I32(), uint32(args[1].I32()), uint32(args[2].I32()), uint32(args[3].I32())))}, nil
		})
}

func (s *stdio) fdWrite(c *wasmtime.Caller, fd int32, iovs, iovsLen, nwritten uint32) int32 {
	if fd != 1 && fd != 2 {
		return wasiErrnoBadf
	}
	ext := c.GetExport("memory")
	if ext == nil || ext.Memory() == nil {
		return wasiErrnoFault
	}
	mem := ext.Memory().UnsafeData(c)
	inBounds := func(off, n uint64) bool { return off+n <= uint64(len(mem)) }
	var total uint32
	for i := uint64(0); i < uint64(iovsLen); i++ {
		at := uint64(iovs) + 8*i
		if !inBounds(at, 8) {
			return wasiErrnoFault
		}
		ptr := uint64(binary.LittleEndian.Uint32(mem[at:]))
		n := uint64(binary.LittleEndian.Uint32(mem[at+4:]))
		if !inBounds(ptr, n) {
			return wasiErrnoFault
		}
		s.write(fd, mem[ptr:ptr+n])
		total += uint32(n)
	}
	if !inBounds(uint64(nwritten), 4) {
		return wasiErrnoFault
	}
	binary.LittleEndian.PutUint32(mem[nwritten:], total)
	return wasiErrnoSuccess
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
