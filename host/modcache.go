package host

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ModuleCache keeps the shim's compiled artefacts (serialised native code) on disk so that a capsule
// compiles once and later starts by deserialising. An artefact is named by the SHA-256 of the
// module and of the shim build and engine setting (fuel) that produced it, so a new shim build or
// a different engine setting never loads a stale artefact.
//
// Loading an artefact runs its native code with the capsule's authority, so the cache is checked,
// not trusted. Every file is sealed by the host: an artefact is stored with an HMAC-SHA256 tag
// over its name and bytes, under a key only the host holds (keyFile, 0600, made at random the
// first time), and so is every remembered module digest (Digest). Before any shim uses an
// artefact, the host copies it into a sealed memfd, computing the tag over exactly the bytes it
// copies, and hands the shim that memfd (Open). The shim never opens a path in the cache (it is
// given no access to it), so there is no window between the check and the use: what the shim
// reads is what the host checked, and nobody can change it afterwards. An artefact whose tag does
// not match (changed, truncated, copied from another name, written without the key) is deleted
// and compiled again; it is never loaded.
//
// Why a MAC kept in the cache and not a digest kept elsewhere: the tag lives with the artefact (one
// file, written atomically), and the key in the same directory is protected the way the whole
// state directory is: no capsule can reach it. Shims get no access to it (artefacts arrive as
// file descriptors) and the processes capsules spawn never see the state directory (package
// sandbox hides it). The MAC is what makes the cache robust where that protection is thinner than
// it looks: a state directory restored or synced from elsewhere, an artefact renamed to another
// module's name, a partial write, or an attacker who can write files into the cache directory but
// not read the key. A process that can read and write the key file as the host's user can
// forge tags, and can equally replace the host's binary: without a sandbox (policy off), nothing
// keeps a capsule's processes from that.
//
// Only the host writes here, and what it writes comes from a shim that had not loaded any guest
// yet (the shim refuses to compile afterwards).
type ModuleCache struct {
	dir string
	key []byte

	// checked are the sealed memfds Open made, by path, with the identity of the file each was
	// checked from: every shim that runs the same module gets the same memfd, so its pages (the
	// code wasmtime maps, the initial memory image) are in memory once however many shims map
	// them, and the check runs once per artefact file rather than once per start.
	mu      sync.Mutex
	checked map[string]checkedArtefact
}

// checkedArtefact is one artefact file as Open checked it.
type checkedArtefact struct {
	id  string   // the file's device, inode, size, modification and change times
	mem *os.File // the sealed memfd holding exactly the bytes checked
}

// keyFile is the name of the cache's MAC key in its directory.
const keyFile = "key"

// keyBytes is the length of the MAC key, and tagBytes of each tag (HMAC-SHA256).
const (
	keyBytes = 32
	tagBytes = sha256.Size
)

// MaxArtefactBytes is the largest artefact the host stores or hands a shim: 1 GiB, room for the
// native code of the largest module the host compiles (256 MiB of WebAssembly). A larger file in
// the cache was not written by the host; it is treated as tampered with.
const MaxArtefactBytes = 1 << 30

// ErrTampered is returned (wrapped) by Open when a cached artefact fails its check; the artefact
// has been deleted.
var ErrTampered = errors.New("the cached artefact is not one the host wrote")

// ModuleCacheDir is the module cache's directory in the state directory stateDir.
func ModuleCacheDir(stateDir string) string { return filepath.Join(stateDir, "modules") }

// OpenModuleCache opens (creating if needed) the cache directory and its key. The directory is
// the host user's only (0700).
func OpenModuleCache(dir string) (*ModuleCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("module cache %s: %w", dir, err)
	}
	key, err := cacheKey(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("module cache %s: %w", dir, err)
	}
	return &ModuleCache{dir: dir, key: key, checked: make(map[string]checkedArtefact)}, nil
}

// cacheKey reads the key at path, making one first if there is none (or it is not a key: then
// every tag made under the old one fails and the artefacts are compiled again). Two hosts
// starting together agree on one key: it is linked into place, never overwritten.
func cacheKey(path string) ([]byte, error) {
	for range 3 {
		key, err := readKey(path)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			// Not a key the host made: replace it.
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("replace the key %s: %w", path, err)
			}
		}
		if err := linkNewKey(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("the key %s keeps changing", path)
}

// readKey reads a key file: a regular file of exactly keyBytes bytes, no symlink followed.
func readKey(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != keyBytes {
		return nil, fmt.Errorf("the key %s is not a %d-byte file", path, keyBytes)
	}
	key := make([]byte, keyBytes)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("read the key %s: %w", path, err)
	}
	return key, nil
}

// linkNewKey writes a fresh random key (0600) and links it at path; fs.ErrExist if one is there.
func linkNewKey(path string) error {
	key := make([]byte, keyBytes)
	rand.Read(key) // never fails (crypto/rand)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-key-*")
	if err != nil {
		return fmt.Errorf("make the key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("make the key: %w", err)
	}
	return nil
}

// Dir is the cache directory.
func (c *ModuleCache) Dir() string { return c.dir }

// Path is where the artefact of the module with the given hash, compiled by the shim build with
// the given hash under the given fuel setting, lives.
func (c *ModuleCache) Path(moduleSHA256, shimSHA256 string, fuel bool) string {
	engine := sha256.Sum256([]byte(shimSHA256 + "\n" + fuelName(fuel)))
	return filepath.Join(c.dir, moduleSHA256+"-"+hex.EncodeToString(engine[:8])+".cwasm")
}

// KernelPath is where the artefact of a shim build's own kernel module lives. The kernel is
// embedded in the shim, so the shim's hash (and the engine's fuel setting) determine it.
func (c *ModuleCache) KernelPath(shimSHA256 string, fuel bool) string {
	name := "kernel-" + shimSHA256[:32]
	if fuel {
		name += "-fuel"
	}
	return filepath.Join(c.dir, name+".cwasm")
}

func fuelName(fuel bool) string {
	if fuel {
		return "fuel=on"
	}
	return "fuel=off"
}

// mac starts the tag of a file of the cache: it covers the file's purpose and name, so that a
// tag is valid only for the file it was made for.
func (c *ModuleCache) mac(kind, path string) hash.Hash {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(kind + "\x00" + filepath.Base(path) + "\x00"))
	return m
}

// Store writes an artefact atomically (temporary file, then rename) as a read-only file: its
// bytes, then their tag.
func (c *ModuleCache) Store(path string, artefact []byte) error {
	if len(artefact) > MaxArtefactBytes {
		return fmt.Errorf("module cache: the artefact is %d bytes; the limit is %d (1 GiB)", len(artefact), MaxArtefactBytes)
	}
	m := c.mac("artefact", path)
	m.Write(artefact)
	tmp, err := os.CreateTemp(c.dir, ".tmp-*.cwasm")
	if err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(artefact[:len(artefact):len(artefact)], m.Sum(nil)...)); err != nil {
		tmp.Close()
		return fmt.Errorf("module cache: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		tmp.Close()
		return fmt.Errorf("module cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	return nil
}

// Open returns the artefact at path as a sealed memfd (read-only for good: no write, no resize)
// holding exactly the bytes whose tag the host checked, positioned at its start, to hand a
// shim; the caller closes it. It returns (nil, nil) when there is no artefact. An artefact that
// fails the check is deleted and an error wrapping ErrTampered says why.
//
// The memfd of an artefact file is made and checked once and shared: Open returns a new
// descriptor of the same memfd for as long as the file keeps the identity it was checked with
// (device, inode, size, modification and change times; any write changes the change time, which
// the file's owner cannot set back). A file that changed is checked again; the memfd is
// immutable, so a shim given it reads what the host checked whatever happens to the file. The
// cache holds one memfd per artefact it has opened until Remove or Close.
func (c *ModuleCache) Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		c.forget(path)
		return nil, nil
	}
	if err != nil && !errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	var sealed *os.File
	if err == nil {
		sealed, err = c.sharedChecked(f, path)
		f.Close()
	} else {
		err = errors.New("it is a symbolic link")
	}
	if err == nil {
		return sealed, nil
	}
	if rerr := c.Remove(path); rerr != nil {
		return nil, fmt.Errorf("module cache: %s: %w (%v); and it could not be deleted: %v", path, ErrTampered, err, rerr)
	}
	return nil, fmt.Errorf("module cache: %s: %w (%v); deleted", path, ErrTampered, err)
}

// sharedChecked is a new descriptor of the memfd checked from f, the file at path: the one made
// before when f is the file it was made from, unchanged, else a new one (copyChecked).
func (c *ModuleCache) sharedChecked(f *os.File, path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%d %d %d %d.%d %d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.checked[path]; ok && a.id == id {
		return reopen(a.mem)
	}
	mem, err := c.copyChecked(f, path)
	if err != nil {
		return nil, err
	}
	if old, ok := c.checked[path]; ok {
		old.mem.Close()
	}
	c.checked[path] = checkedArtefact{id: id, mem: mem}
	return reopen(mem)
}

// reopen opens the memfd f again, read-only, positioned at its start (its own offset, unlike a
// dup's). Where /proc is not mounted it falls back to a dup, which shares f's offset: shims map
// the memfd and never read it by offset.
func reopen(f *os.File) (*os.File, error) {
	g, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), os.O_RDONLY, 0)
	if err == nil {
		return g, nil
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup the memfd: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// forget drops the memfd checked from the file at path, if any.
func (c *ModuleCache) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.checked[path]; ok {
		a.mem.Close()
		delete(c.checked, path)
	}
}

// Close drops the memfds the cache holds (the shims keep theirs). The cache stays usable.
func (c *ModuleCache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for path, a := range c.checked {
		a.mem.Close()
		delete(c.checked, path)
	}
}

// copyChecked copies the artefact in f (its bytes, then a tag) into a sealed memfd and checks the
// tag over exactly the bytes copied, whatever happens to the file meanwhile.
func (c *ModuleCache) copyChecked(f *os.File, path string) (*os.File, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("it is not a regular file (%s)", fi.Mode().Type())
	case size < tagBytes:
		return nil, fmt.Errorf("it is %d bytes, too short to hold a tag", size)
	case size-tagBytes > MaxArtefactBytes:
		return nil, fmt.Errorf("it is %d bytes; no artefact is larger than %d", size, MaxArtefactBytes)
	}
	fd, err := unix.MemfdCreate("astrid-artefact", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "artefact "+filepath.Base(path))
	ok := false
	defer func() {
		if !ok {
			mem.Close()
		}
	}()
	m := c.mac("artefact", path)
	n, err := io.CopyN(io.MultiWriter(mem, m), f, size-tagBytes)
	if err != nil {
		return nil, fmt.Errorf("copied %d of %d bytes: %w", n, size-tagBytes, err)
	}
	var tag [tagBytes + 1]byte
	if k, err := io.ReadFull(f, tag[:]); k != tagBytes || !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, errors.New("it changed while it was being read")
	}
	if !hmac.Equal(tag[:tagBytes], m.Sum(nil)) {
		return nil, errors.New("its tag does not match its name and bytes")
	}
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return nil, fmt.Errorf("seal the memfd: %w", err)
	}
	if _, err := mem.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	ok = true
	return mem, nil
}

// Remove deletes an artefact the shim could not load (corrupt, or from an incompatible build).
func (c *ModuleCache) Remove(path string) error {
	c.forget(path)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("module cache: %w", err)
	}
	return nil
}

// Digest returns the SHA-256 of the module at path. Reading and hashing a module costs
// milliseconds of every capsule start, so the digest is remembered in an index next to the
// artefacts, keyed by the file's device, inode, size, modification and change times: any write to
// the file changes its change time, which its owner cannot set back. Each entry carries a tag
// (see ModuleCache): a forged entry could otherwise point a capsule at another module's
// artefact. An entry whose tag does not match is ignored and rewritten.
func (c *ModuleCache) Digest(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("read module: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		_, sum, err := readModule(abs)
		return sum, err
	}
	identity := fmt.Sprintf("%d %d %d %d.%d %d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	pathKey := sha256.Sum256([]byte(abs))
	index := filepath.Join(c.dir, "digests", hex.EncodeToString(pathKey[:16]))
	tag := func(sum string) string {
		m := c.mac("digest", index)
		m.Write([]byte(abs + "\x00" + identity + "\x00" + sum))
		return hex.EncodeToString(m.Sum(nil))
	}
	if data, err := readSmall(index, 4096); err == nil {
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) == 3 && lines[0] == identity && len(lines[1]) == 64 && hmac.Equal([]byte(lines[2]), []byte(tag(lines[1]))) {
			return lines[1], nil
		}
	}
	_, sum, err := readModule(abs)
	if err != nil {
		return "", err
	}
	// The index is only a shortcut: failing to write it costs the next start a re-hash.
	if os.MkdirAll(filepath.Dir(index), 0o700) == nil {
		_ = writeAtomic(index, []byte(identity+"\n"+sum+"\n"+tag(sum)+"\n"))
	}
	return sum, nil
}

// readSmall reads a file of at most limit bytes, following no symlink.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return buf.Bytes(), nil
}

// writeAtomic replaces path with data (temporary file, then rename).
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
