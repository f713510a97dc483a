// Package wasmscan reads what the host needs to know about a capsule's module before a shim
// loads it: whether it exports a given function. Upstream pre-scans the export section for
// `run` the same way, because a run-loop capsule is set up differently (its [[interceptor]]s are
// subscribed on the bus for it before it loads, rather than dispatched to astrid_hook_trigger).
//
// The scan reads the module header and each section's header, skips every section but the
// export section, and reads the export section entry by entry without buffering names it does
// not need: its memory use is constant and it reads each byte of the file at most once. A
// malformed or truncated module is an error; the shim, which validates the whole module, would
// refuse it too.
package wasmscan

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Wasm section ids and export kinds (the core specification, binary format).
const (
	sectionCustom = 0
	sectionExport = 7
	exportFunc    = 0
)

// maxLEB32 is the most bytes an unsigned 32-bit LEB128 number takes.
const maxLEB32 = 5

// HasFuncExport reports whether the core wasm module read from r exports a function named name.
// It reads at most the module's header, its section headers and its export section.
func HasFuncExport(r io.Reader, name string) (bool, error) {
	br := bufio.NewReader(r)
	var header [8]byte
	if _, err := io.ReadFull(br, header[:]); err != nil {
		return false, fmt.Errorf("module header: %w", unexpected(err))
	}
	if string(header[:4]) != "\x00asm" {
		return false, errors.New("not a wasm module (no \\0asm magic number)")
	}
	if header[4] != 1 || header[5] != 0 || header[6] != 0 || header[7] != 0 {
		return false, fmt.Errorf("wasm binary version %x is not a core module of version 1", header[4:])
	}
	for {
		id, err := br.ReadByte()
		if err == io.EOF {
			return false, nil // no export section
		}
		if err != nil {
			return false, err
		}
		size, err := readU32(br)
		if err != nil {
			return false, fmt.Errorf("section %d: size: %w", id, err)
		}
		if id != sectionExport {
			if id > 12 && id != sectionCustom {
				return false, fmt.Errorf("unknown section id %d", id)
			}
			if _, err := br.Discard(int(size)); err != nil {
				return false, fmt.Errorf("section %d (%d bytes): %w", id, size, unexpected(err))
			}
			continue
		}
		found, err := scanExports(&io.LimitedReader{R: br, N: int64(size)}, name)
		if err != nil {
			return false, fmt.Errorf("export section: %w", err)
		}
		return found, nil // a module has at most one export section
	}
}

// scanExports reads an export section's entries, looking for a function named name.
func scanExports(r *io.LimitedReader, name string) (bool, error) {
	br := byteReader{r}
	count, err := readU32(br)
	if err != nil {
		return false, err
	}
	found := false
	buf := make([]byte, len(name))
	for k := uint32(0); k < count; k++ {
		n, err := readU32(br)
		if err != nil {
			return false, fmt.Errorf("export %d: name length: %w", k, err)
		}
		match := int(n) == len(name)
		if match {
			if _, err := io.ReadFull(r, buf); err != nil {
				return false, fmt.Errorf("export %d: name: %w", k, unexpected(err))
			}
			match = string(buf) == name
		} else if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return false, fmt.Errorf("export %d: name (%d bytes): %w", k, n, unexpected(err))
		}
		kind, err := br.ReadByte()
		if err != nil {
			return false, fmt.Errorf("export %d: kind: %w", k, unexpected(err))
		}
		if _, err := readU32(br); err != nil {
			return false, fmt.Errorf("export %d: index: %w", k, err)
		}
		if match && kind == exportFunc {
			found = true
		}
	}
	if r.N != 0 {
		return false, fmt.Errorf("%d bytes after the last export", r.N)
	}
	return found, nil
}

// byteReader reads single bytes from a reader that has no ReadByte.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var c [1]byte
	if _, err := io.ReadFull(b.r, c[:]); err != nil {
		return 0, unexpected(err)
	}
	return c[0], nil
}

// readU32 reads an unsigned LEB128 number of at most 32 bits.
func readU32(r io.ByteReader) (uint32, error) {
	var v uint32
	for i := 0; i < maxLEB32; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, unexpected(err)
		}
		if i == maxLEB32-1 && c > 0x0f {
			return 0, errors.New("LEB128 number overflows 32 bits")
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 number longer than 5 bytes")
}

// unexpected turns an end of file inside a structure into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("the module ends early: %w", io.ErrUnexpectedEOF)
	}
	return err
}
