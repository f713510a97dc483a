package shared

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Compiled code reaches a shim as a file descriptor, never as a path: the host checks a cached
// artefact and copies exactly the bytes it checked into a sealed memfd (no write, no resize, ever)
// that the shim inherits at start (exec.Cmd.ExtraFiles). The shim has no access to the module
// cache, and nobody can change what it reads between the host's check and its use.

// Environment variables naming the descriptors of the artefacts a shim inherits.
const (
	// EnvShimKernelFD is the descriptor of the shim's kernel module compiled by the same shim
	// build, if the host has it cached; the shim compiles the kernel otherwise (see
	// InfoResponse.kernel_artefact).
	EnvShimKernelFD = "ASTRID_SHIM_KERNEL_FD"
	// EnvShimArtefactFD is the descriptor of the capsule's compiled module, if the host has it
	// cached; otherwise the host has the shim Compile it, and Load uses what the shim compiled.
	EnvShimArtefactFD = "ASTRID_SHIM_ARTEFACT_FD"
)

// Artefact is compiled code a shim inherited from the host, mapped read-only.
type Artefact struct {
	// Bytes are the artefact's bytes; they are valid until Close.
	Bytes []byte
	// Path names the sealed descriptor in /proc ("/proc/self/fd/N"), or is empty when /proc does
	// not show it. Loading the artefact by path lets wasmtime map its code straight from the
	// memfd instead of copying every byte into fresh executable memory (tens of milliseconds
	// for a Go guest). Reopening the memfd through /proc gives the same sealed inode, so what
	// is read is still exactly what the host checked. Valid until Close.
	Path string
	file *os.File
}

// InheritedArtefact maps the artefact whose descriptor the environment variable env names; nil
// when the variable is unset (the host had no artefact to give).
func InheritedArtefact(env string) (*Artefact, error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s is %q; want the number of an inherited descriptor (3 or more)", env, v)
	}
	f := os.NewFile(uintptr(fd), env)
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: descriptor %d: %w", env, fd, err)
	}
	if fi.Size() <= 0 {
		f.Close()
		return nil, fmt.Errorf("%s: descriptor %d holds no artefact", env, fd)
	}
	data, err := unix.Mmap(fd, 0, int(fi.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: map descriptor %d: %w", env, fd, err)
	}
	return &Artefact{Bytes: data, Path: procPath(fd, fi), file: f}, nil
}

// procPath is "/proc/self/fd/N" for descriptor fd if that path resolves to the very inode fd
// refers to (fi), else "" (no /proc in this mount namespace, or not the process's own).
func procPath(fd int, fi os.FileInfo) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	pfi, err := os.Stat(p)
	if err != nil || !os.SameFile(fi, pfi) {
		return ""
	}
	return p
}

// Close unmaps the artefact and closes its descriptor. It is safe on nil and more than once.
func (a *Artefact) Close() {
	if a == nil || a.file == nil {
		return
	}
	_ = unix.Munmap(a.Bytes)
	a.Bytes, a.Path = nil, ""
	a.file.Close()
	a.file = nil
}
