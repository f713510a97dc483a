package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// ShimName is the file name of the shim executable, looked for next to astrid-host.
const ShimName = "astrid-shim"

// ShimBinary is the astrid-shim executable the host launches, as verified when the host started.
//
// The host checks the file once (a regular file, owned by root or by the host's user, not writable
// by group or others) and records its SHA-256. Before each launch Recheck compares the file's
// identity and change time with the recorded ones; only if they differ is the file hashed again,
// and a different hash refuses the launch. (A file's ctime cannot be set back by its owner, so an
// unchanged ctime means unchanged content, and a launch does not pay 20 ms to hash 40 MB.)
type ShimBinary struct {
	Path   string
	SHA256 string
	stat   fileIdentity
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
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: locate the running executable: %w", ShimName, err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", ShimName, err)
	}
	return filepath.Join(filepath.Dir(exe), ShimName), nil
}

// VerifyShim checks the shim at path and records its hash, reading the whole file (about 40 MB:
// some 50 ms). A host that keeps a state directory uses VerifyShimCached instead.
func VerifyShim(path string) (*ShimBinary, error) {
	return verifyShim(path, func(abs string) (string, error) { return hashFile(abs) })
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
	return verifyShim(path, cache.Digest)
}

// verifyShim checks the shim at path and records its hash as digest finds it. The identity is
// taken before and after: a file that changed meanwhile is refused rather than recorded with a
// hash of other bytes.
func verifyShim(path string, digest func(abs string) (string, error)) (*ShimBinary, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("shim %s: %w", path, err)
	}
	id, err := identify(abs)
	if err != nil {
		return nil, err
	}
	sum, err := digest(abs)
	if err != nil {
		return nil, fmt.Errorf("hash shim %s: %w", abs, err)
	}
	if after, err := identify(abs); err != nil {
		return nil, err
	} else if after != id {
		return nil, fmt.Errorf("shim %s changed while it was being verified; start again once it is in place", abs)
	}
	return &ShimBinary{Path: abs, SHA256: sum, stat: id}, nil
}

// Recheck verifies that the shim is still the file VerifyShim hashed.
func (s *ShimBinary) Recheck() error {
	id, err := identify(s.Path)
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
		return fmt.Errorf("shim %s changed since the host started (sha256 was %s, now %s); restart astrid-host to accept the new shim", s.Path, s.SHA256, sum)
	}
	s.stat = id
	return nil
}

// identify stats the shim and applies the ownership and mode rules.
func identify(path string) (fileIdentity, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileIdentity{}, fmt.Errorf("shim %s: %w (build it with `make`, or pass --shim PATH)", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fileIdentity{}, fmt.Errorf("shim %s is not a regular file (mode %s); it must be the astrid-shim executable itself, not a link", path, fi.Mode())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fileIdentity{}, fmt.Errorf("shim %s is writable by group or others (mode %s); run `chmod go-w %s`", path, fi.Mode().Perm(), path)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		return fileIdentity{}, fmt.Errorf("shim %s is not executable by its owner (mode %s)", path, fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, fmt.Errorf("shim %s: cannot read its owner on this system", path)
	}
	if uid := uint32(os.Getuid()); st.Uid != 0 && st.Uid != uid {
		return fileIdentity{}, fmt.Errorf("shim %s is owned by uid %d; it must be owned by root or by the host's user (uid %d)", path, st.Uid, uid)
	}
	return fileIdentity{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, mode: fi.Mode(), uid: st.Uid}, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash shim %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash shim %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
