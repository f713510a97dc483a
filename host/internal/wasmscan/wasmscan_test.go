package wasmscan

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// leb encodes v as unsigned LEB128.
func leb(v uint32) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

// section is one section: id, size, content.
func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, leb(uint32(len(content)))...), content...)
}

// exports is an export section's content: (name, kind) pairs, each with index 0.
func exports(entries ...any) []byte {
	out := leb(uint32(len(entries) / 2))
	for i := 0; i < len(entries); i += 2 {
		name := entries[i].(string)
		out = append(append(out, leb(uint32(len(name)))...), name...)
		out = append(out, entries[i+1].(byte), 0)
	}
	return out
}

func module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

func TestHasFuncExport(t *testing.T) {
	typeSec := section(1, []byte{1, 0x60, 0, 0}) // one type, () -> ()
	custom := section(0, append([]byte{4}, "name..."...))
	tests := []struct {
		name    string
		module  []byte
		want    bool
		wantErr string
	}{
		{"run function", module(typeSec, section(7, exports("run", byte(0)))), true, ""},
		{"after other exports and a custom section", module(custom, typeSec, section(7, exports("memory", byte(2), "call", byte(0), "run", byte(0)))), true, ""},
		{"run is a memory", module(section(7, exports("run", byte(2)))), false, ""},
		{"similar names", module(section(7, exports("running", byte(0), "ru", byte(0), "Run", byte(0)))), false, ""},
		{"no export section", module(typeSec), false, ""},
		{"empty module", module(), false, ""},
		{"bad magic", []byte("\x00asx\x01\x00\x00\x00"), false, "not a wasm module"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), false, "not a core module"},
		{"short header", []byte("\x00as"), false, "ends early"},
		{"section past the end", append([]byte("\x00asm\x01\x00\x00\x00\x01"), leb(1<<30)...), false, "ends early"},
		{"export section past the end", append([]byte("\x00asm\x01\x00\x00\x00\x07"), append(leb(100), 1, 3, 'r', 'u', 'n')...), false, "ends early"},
		{"name past the section", module(section(7, []byte{1, 200, 1, 'r'})), false, "ends early"},
		{"LEB too long", []byte("\x00asm\x01\x00\x00\x00\x01\x80\x80\x80\x80\x80\x01"), false, "LEB128"},
		{"LEB overflow", []byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\x7f"), false, "overflows"},
		{"trailing bytes in the export section", module(section(7, append(exports("run", byte(0)), 9))), false, "after the last export"},
		{"unknown section", module(section(42, nil)), false, "unknown section id 42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HasFuncExport(bytes.NewReader(tc.module), "run")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("HasFuncExport = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestHasFuncExportStopsAtExports: the scan ends with the export section; a large code section
// after it is not read.
func TestHasFuncExportStopsAtExports(t *testing.T) {
	code := section(10, bytes.Repeat([]byte{0}, 1<<20))
	m := module(section(7, exports("run", byte(0))), code)
	cr := &countingReader{r: bytes.NewReader(m)}
	if got, err := HasFuncExport(cr, "run"); !got || err != nil {
		t.Fatalf("HasFuncExport = %v, %v", got, err)
	}
	if cr.n > 64<<10 {
		t.Fatalf("read %d bytes of a %d-byte module", cr.n, len(m))
	}
}
