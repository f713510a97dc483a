package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/astrid-go/astrid/host/internal/safefile"
	"github.com/astrid-go/astrid/shared"
)

// FileName is the name of the manifest in a capsule directory.
const FileName = "Capsule.toml"

// Load reads dir/Capsule.toml (a regular file of at most 1 MiB; symlinks are followed, and
// anything else, a device, a FIFO or a larger file, is refused at once without reading it), parses
// and validates it like Parse, then
// checks the first component's wasm file: it must exist, be a regular file
// and start with the header of a WebAssembly core module. Every problem
// found, in the manifest and in the file, is returned together in one
// Errors value; warnings are returned even when the error is not nil.
func Load(dir string) (*Manifest, []Problem, error) {
	path := filepath.Join(dir, FileName)
	data, err := safefile.ReadFile(path, maxManifestSize)
	if err != nil {
		msg := "cannot read the manifest: " + err.Error()
		var serr *safefile.Error
		switch {
		case errors.Is(err, fs.ErrNotExist):
			msg = "no " + FileName + " here: a capsule directory needs one"
			if target, lerr := os.Readlink(path); lerr == nil {
				msg = "the manifest is a symlink to " + target + ", which does not exist"
			}
		case errors.Is(err, safefile.ErrTooLarge) && errors.As(err, &serr):
			msg = "the manifest " + serr.Reason + " (" + formatSize(maxManifestSize) + ")"
		case errors.As(err, &serr):
			msg = "the manifest " + serr.Reason
		}
		return nil, nil, Errors{{File: path, Message: msg}}
	}
	m, d, errs := parseWith(path, data)
	if m == nil {
		return nil, nil, errs
	}
	if d.wasmKey != nil {
		if err := checkWasm(m.WasmPath()); err != nil {
			d.errorf(d.wasmKey, "wasm file %q (%s) %v", m.Components[0].File, m.WasmPath(), err)
			errs = d.errs
			sortProblems(errs)
		}
	}
	if len(errs) > 0 {
		return nil, d.warns, errs
	}
	return m, d.warns, nil
}

// ForWasm builds the default manifest of a bare .wasm file, as given to
// `astrid-host call`: the capsule id is the file name without its
// extension, lower-cased, with every character outside [a-z0-9-] replaced
// by '-' and leading and trailing '-' trimmed ("capsule" if nothing is
// left); the version is "0.0.0"; there is one component (the file), no
// capability, and default limits and restart policy. The file is checked
// as Load checks it; a problem is returned as Errors.
func ForWasm(wasmPath string) (*Manifest, error) {
	abs := absPath(wasmPath)
	if err := checkWasm(abs); err != nil {
		return nil, Errors{{File: wasmPath, Message: "wasm file " + err.Error()}}
	}
	base := filepath.Base(abs)
	return &Manifest{
		Dir:        filepath.Dir(abs),
		Package:    Package{Name: idFromFileName(base), Version: "0.0.0"},
		Components: []Component{{File: base, Type: "executable"}},
		Limits:     defaultLimits(),
		Restart:    defaultRestart(),
	}, nil
}

// idFromFileName derives a capsule id from the name of a .wasm file.
func idFromFileName(base string) string {
	name := strings.ToLower(strings.TrimSuffix(base, filepath.Ext(base)))
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	id = strings.Trim(id, "-")
	if id == "" {
		return "capsule"
	}
	return id
}

// WebAssembly binary headers: the magic bytes, then a 4-byte version. Core
// modules have version 1; component-model binaries reuse the magic with
// version 0x0d and layer 1.
var (
	wasmMagic         = []byte("\x00asm")
	wasmCoreVersion   = []byte{0x01, 0x00, 0x00, 0x00}
	wasmComponentVers = []byte{0x0d, 0x00, 0x01, 0x00}
)

// checkWasm checks that path is a regular file of at most shared.MaxModuleBytes (256 MiB)
// that starts with the header of a WebAssembly core module. The error
// completes a sentence whose subject is the file, e.g. "does not exist".
func checkWasm(path string) error {
	f, _, err := safefile.Open(path, shared.MaxModuleBytes)
	if err != nil {
		var serr *safefile.Error
		switch {
		case errors.As(err, &serr) && serr.Mode.IsDir():
			return errors.New("is a directory, not a .wasm file")
		case errors.Is(err, safefile.ErrTooLarge) && errors.As(err, &serr):
			return errors.New(serr.Reason + " (" + formatSize(shared.MaxModuleBytes) + ")")
		case errors.As(err, &serr):
			return errors.New(serr.Reason)
		}
		return fmt.Errorf("cannot be read: %v", err)
	}
	defer f.Close()
	var hdr [8]byte
	n, err := io.ReadFull(f, hdr[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot be read: %v", err)
	}
	switch {
	case n < len(wasmMagic) || !bytes.Equal(hdr[:4], wasmMagic):
		return errors.New(`is not a WebAssembly module: it does not start with the "\0asm" magic bytes`)
	case n < len(hdr):
		return fmt.Errorf("is not a WebAssembly module: it is truncated (%d bytes; the header alone is 8)", n)
	case bytes.Equal(hdr[4:], wasmComponentVers):
		return errors.New("is a WebAssembly component (component-model binary), not a core module: build the capsule as a core module (e.g. for wasm32-wasip1) without turning it into a component")
	case !bytes.Equal(hdr[4:], wasmCoreVersion):
		return fmt.Errorf("is not a WebAssembly core module: its binary version is % x, want 01 00 00 00", hdr[4:])
	}
	return nil
}
