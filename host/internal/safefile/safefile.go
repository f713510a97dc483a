// Package safefile reads the files a capsule directory controls (its Capsule.toml and its .wasm)
// without trusting them to be what their names say.
//
// Whoever writes a capsule directory decides what each name in it is: a symlink to /dev/zero, a
// named pipe, or a sparse file of terabytes. A plain os.ReadFile would read /dev/zero until memory
// runs out, block forever opening a FIFO, and read a huge file whole before any size rule runs.
// Open refuses all of them at once:
//
//   - Symlinks are followed (a capsule directory may well link its Capsule.toml or its module
//     from elsewhere), but the file they lead to must be a regular file.
//   - The type and size are checked with stat before the file is opened, so a device is never
//     opened at all, and again with fstat on the opened descriptor, so a name swapped between the
//     two checks cannot slip through. The open uses O_NONBLOCK (and O_NOCTTY), so a name swapped
//     for a FIFO cannot block it.
//   - A file larger than the caller's limit is refused from its size alone, before a byte is
//     read; reads go through an io.LimitReader of limit+1 bytes, so a file that grows after the
//     check is refused too rather than read whole.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// ErrNotRegular is wrapped by the error of a path that is not a regular file (a directory, a
// device, a FIFO, a socket).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error of a file larger than the limit it is read under.
var ErrTooLarge = errors.New("file too large")

// Error says why a file was refused. Its Error text names the path; Reason completes a sentence
// whose subject is the file ("is a named pipe (FIFO), not a regular file"), for callers that name
// the file themselves.
type Error struct {
	Path   string
	Reason string
	Mode   fs.FileMode // the file's type when it was refused for it (ErrNotRegular)
	Err    error       // ErrNotRegular, ErrTooLarge, or the underlying *fs.PathError
}

func (e *Error) Error() string { return e.Path + " " + e.Reason }

func (e *Error) Unwrap() error { return e.Err }

// Open opens the regular file at path for reading, following symlinks, and checks that it is at
// most limit bytes long. It never blocks on a FIFO and never opens a device. The caller closes the
// file and should read it through [io.LimitReader] of limit+1 bytes, or use [ReadFile].
func Open(path string, limit int64) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, statError(path, err)
	}
	if err := check(path, fi, limit); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, statError(path, err)
	}
	fi, err = f.Stat()
	if err == nil {
		err = check(path, fi, limit)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// ReadFile reads the whole regular file at path, which must be at most limit bytes, with the
// guarantees of [Open].
func ReadFile(path string, limit int64) ([]byte, error) {
	f, fi, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, 0, fi.Size()+1) // a file that grows past the check costs the usual growth
	data, err = readAll(f, data, limit+1)
	if err != nil {
		return nil, &Error{Path: path, Reason: fmt.Sprintf("cannot be read: %v", err), Err: err}
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, int64(len(data)), limit, "at least ")
	}
	return data, nil
}

// readAll appends at most n bytes of r to data.
func readAll(r io.Reader, data []byte, n int64) ([]byte, error) {
	lr := io.LimitReader(r, n)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		k, err := lr.Read(data[len(data):cap(data)])
		data = data[:len(data)+k]
		if errors.Is(err, io.EOF) {
			return data, nil
		}
		if err != nil {
			return data, err
		}
	}
}

func check(path string, fi fs.FileInfo, limit int64) error {
	if !fi.Mode().IsRegular() {
		return &Error{Path: path, Reason: fmt.Sprintf("is %s, not a regular file", Describe(fi.Mode())), Mode: fi.Mode(), Err: ErrNotRegular}
	}
	if fi.Size() > limit {
		return tooLarge(path, fi.Size(), limit, "")
	}
	return nil
}

func tooLarge(path string, size, limit int64, atLeast string) error {
	return &Error{Path: path, Reason: fmt.Sprintf("is %s%d bytes; the limit is %d bytes", atLeast, size, limit), Err: ErrTooLarge}
}

func statError(path string, err error) error {
	var reason string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "does not exist"
	case errors.Is(err, syscall.ELOOP):
		reason = "is a symlink loop (too many levels of symbolic links)"
	default:
		cause := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err
		}
		reason = fmt.Sprintf("cannot be read: %v", cause)
	}
	return &Error{Path: path, Reason: reason, Err: err}
}

// Describe names the kind of file a mode says, with an article: "a directory", "a named pipe
// (FIFO)", "a character device", ... .
func Describe(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	default:
		return fmt.Sprintf("an irregular file (mode %s)", m)
	}
}

// CheckName refuses a per-capsule file name that would put the file outside its directory (empty,
// ".", "..", a path separator or a NUL). Capsule ids ([a-z0-9-]) always pass; this guards
// callers that pass something else.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%q is not a capsule name", name)
	}
	return nil
}
