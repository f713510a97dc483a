package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ShimName is the file name of the shim executable, looked for next to astrid-host.
const ShimName = "astrid-shim"

// HelperName is the file name of the sandbox helper, looked for next to astrid-host (FindHelper).
const HelperName = "astrid-sandbox"

// ShimBinary is the astrid-shim executable the host launches, as verified when the host started.
//
// The host checks the file once (a regular file, owned by root or by the host's user, not writable
// by group or others) and records its SHA-256. Before each launch Recheck compares the file's
// identity and change time with the recorded ones; only if they differ is the file hashed again,
// and a different hash refuses the launch. (A file's ctime cannot be set back by its owner, so an
// unchanged ctime means unchanged content, and a launch does not pay 20 ms to hash 40 MB.)
//
// The sandbox helper (VerifyHelper) is checked and pinned the same way.
type ShimBinary struct {
	Path   string
	SHA256 string
	stat   fileIdentity
	kind   string // "shim" or "sandbox helper", for errors
}

type fileIdentity struct {
	dev, ino uint64
	size     int64
	mtime    syscall.Timespec
	ctime    syscall.Timespec
	mode     os.FileMode
	uid      uint32
}

// FindShim returns the shim next to the running executable.
func FindShim() (string, error) {
	return nextToExecutable(ShimName)
}

// nextToExecutable is the path of the file name in the running executable's directory (its
// symbolic links resolved).
func nextToExecutable(name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: locate the running executable: %w", name, err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", name, err)
	}
	return filepath.Join(filepath.Dir(exe), name), nil
}

// FindHelper returns the sandbox helper (astrid-sandbox) next to the running executable, or ""
// when there is no file of that name there: the host then re-executes itself as its helper, which
// costs each shim start some 35 ms of CPU more (astrid-host's package initialisation).
func FindHelper() (string, error) {
	path, err := nextToExecutable(HelperName)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return path, nil
}

// VerifyShim checks the shim at path and records its hash, reading the whole file (about 40 MB:
// some 50 ms). A host that keeps a state directory uses VerifyShimCached instead.
func VerifyShim(path string) (*ShimBinary, error) {
	return verifyBinary("shim", path, hashFile)
}

// VerifyHelper checks the sandbox helper at path under the shim's rules (a regular file owned by
// root or the host's user, writable by no one else, executable by its owner) and records its hash
// (about 4 MB: a few milliseconds). The sandbox calls Recheck before each helper start
// (sandbox.Sandbox.WithHelperCheck), so a helper replaced while the host runs is refused.
func VerifyHelper(path string) (*ShimBinary, error) {
	return verifyBinary("sandbox helper", path, hashFile)
}

// VerifyShimCached is VerifyShim for a host whose state directory is stateDir: the shim's hash
// is remembered in the digest index of the module cache there (ModuleCache.Digest: an entry
// sealed with the cache's key, valid only while the file's device, inode, size, modification and
// change times are those recorded), so a host start reads the shim only when it is new or has
// changed. The file rules are checked every time, and the file must not change while it is
// verified.
func VerifyShimCached(path, stateDir string) (*ShimBinary, error) {
	cache, err := OpenModuleCache(ModuleCacheDir(stateDir))
	if err != nil {
		return nil, err
	}
	return verifyBinary("shim", path, cache.Digest)
}

// verifyBinary checks the executable at path (kind names it in errors: "shim", "sandbox helper")
// and records its hash as digest finds it. The identity is taken before and after: a file that
// changed meanwhile is refused rather than recorded with a hash of other bytes.
func verifyBinary(kind, path string, digest func(abs string) (string, error)) (*ShimBinary, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, path, err)
	}
	id, err := identify(kind, abs)
	if err != nil {
		return nil, err
	}
	sum, err := digest(abs)
	if err != nil {
		return nil, fmt.Errorf("hash %s %s: %w", kind, abs, err)
	}
	if after, err := identify(kind, abs); err != nil {
		return nil, err
	} else if after != id {
		return nil, fmt.Errorf("%s %s changed while it was being verified; start again once it is in place", kind, abs)
	}
	return &ShimBinary{Path: abs, SHA256: sum, stat: id, kind: kind}, nil
}

// Recheck verifies that the file is still the one VerifyShim (or VerifyHelper) hashed.
func (s *ShimBinary) Recheck() error {
	kind := s.kind
	if kind == "" {
		kind = "shim"
	}
	id, err := identify(kind, s.Path)
	if err != nil {
		return err
	}
	if id == s.stat {
		return nil
	}
	sum, err := hashFile(s.Path)
	if err != nil {
		return err
	}
	if sum != s.SHA256 {
		return fmt.Errorf("%s %s changed since the host started (sha256 was %s, now %s); restart astrid-host to accept the new %s", kind, s.Path, s.SHA256, sum, kind)
	}
	s.stat = id
	return nil
}

// identify stats the executable (kind names it: "shim", "sandbox helper") and applies the
// ownership and mode rules.
func identify(kind, path string) (fileIdentity, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileIdentity{}, fmt.Errorf("%s %s: %w (build it with `make`, or pass --shim PATH)", kind, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fileIdentity{}, fmt.Errorf("%s %s is not a regular file (mode %s); it must be the executable itself, not a link", kind, path, fi.Mode())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fileIdentity{}, fmt.Errorf("%s %s is writable by group or others (mode %s); run `chmod go-w %s`", kind, path, fi.Mode().Perm(), path)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		return fileIdentity{}, fmt.Errorf("%s %s is not executable by its owner (mode %s)", kind, path, fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, fmt.Errorf("%s %s: cannot read its owner on this system", kind, path)
	}
	if uid := uint32(os.Getuid()); st.Uid != 0 && st.Uid != uid {
		return fileIdentity{}, fmt.Errorf("%s %s is owned by uid %d; it must be owned by root or by the host's user (uid %d)", kind, path, st.Uid, uid)
	}
	return fileIdentity{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, mode: fi.Mode(), uid: st.Uid}, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
